// The self-service portal's only script: on a BOT activation page, asks the portal every two
// seconds whether the bot has activated the token, and once it has opens the page that says so.
// Without JavaScript the page's Check button does the same.
(function () {
  "use strict";
  var status = document.getElementById("activation-status");
  if (!status) {
    return;
  }
  var url = status.getAttribute("data-status-url");
  var done = status.getAttribute("data-done-url");
  function check() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        if (answer && answer.state === "active") {
          status.textContent = "The token is active.";
          window.location.assign(done);
        } else {
          window.setTimeout(check, 2000);
        }
      })
      .catch(function () {
        window.setTimeout(check, 5000);
      });
  }
  window.setTimeout(check, 2000);
})();
