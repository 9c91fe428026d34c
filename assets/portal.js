// The self-service portal's only script. On a BOT activation page, asks the portal every two
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

// On the page of an approval in Telegram, asks the portal whether the user answered (the portal
// waits a few seconds for the answer before it says pending), counts down the time left, and
// once approved opens the portal; denied or expired, it sends Continue, which says why.
// Without JavaScript the page's Continue button does the same.
(function () {
  "use strict";
  var status = document.getElementById("approval-status");
  if (!status) {
    return;
  }
  var url = status.getAttribute("data-status-url");
  var left = document.getElementById("approval-left");
  var form = document.getElementById("approval-continue");
  var endsAt = Date.now() + 1000 * Number(status.getAttribute("data-seconds-left") || 0);
  function tick() {
    var seconds = Math.max(0, Math.round((endsAt - Date.now()) / 1000));
    var rest = seconds % 60;
    left.textContent = Math.floor(seconds / 60) + ":" + (rest < 10 ? "0" : "") + rest;
    if (seconds > 0) {
      window.setTimeout(tick, 1000);
    }
  }
  function check() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        if (!answer) {
          window.setTimeout(check, 5000);
        } else if (answer.state === "pending") {
          window.setTimeout(check, 1000);
        } else if (answer.next) {
          status.textContent = answer.state === "approved" ? "Approved." : "";
          window.location.assign(answer.next);
        } else {
          form.submit();
        }
      })
      .catch(function () {
        window.setTimeout(check, 5000);
      });
  }
  window.setTimeout(tick, 1000);
  check();
})();
