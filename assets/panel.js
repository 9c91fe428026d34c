// Small enhancements of the admin panel. Every page works without them.

// A "Copy" button next to a read-only field: hidden without JavaScript, where the field can
// still be selected and copied by hand.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    field.select();
    var copied = function () {
      button.textContent = "Copied";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(copied, function () {
        document.execCommand("copy");
        copied();
      });
    } else {
      document.execCommand("copy");
      copied();
    }
  });
});
