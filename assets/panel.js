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

// The "All" boxes of a resource's Self-Service tab tick and untick their group at once, and
// follow it when a single box changes. Each keeps its hidden "shown_…" field equal to what it
// shows, so that the server takes the single boxes as they are; without JavaScript the server
// applies an "All" box the administrator toggled (see `self_service_from_form`).
(function () {
  "use strict";
  var groups = [];
  function box(name) {
    return document.querySelector('input[type="checkbox"][name="' + name + '"]');
  }
  function shown(name) {
    return document.querySelector('input[type="hidden"][name="shown_' + name + '"]');
  }
  function add(name, members) {
    var all = box(name);
    var hidden = shown(name);
    if (all && hidden && members.length) {
      groups.push({ all: all, hidden: hidden, members: members });
    }
  }
  function boxes(selector) {
    return Array.prototype.slice.call(document.querySelectorAll(selector));
  }
  var tokenActions = boxes('input[type="checkbox"][name="action"][data-group="token"]');
  var userActions = boxes('input[type="checkbox"][name="action"][data-group="user"]');
  add("all_token", tokenActions);
  add("all_user", userActions);
  add("all", tokenActions.concat(userActions));
  add("all_kinds", boxes('input[type="checkbox"][name="kind"]'));
  if (!groups.length) {
    return;
  }
  function follow() {
    groups.forEach(function (group) {
      group.all.checked = group.members.every(function (member) {
        return member.checked;
      });
      group.hidden.value = group.all.checked ? "on" : "off";
    });
  }
  groups.forEach(function (group) {
    group.all.addEventListener("change", function () {
      var ticked = group.all.checked;
      group.members.forEach(function (member) {
        member.checked = ticked;
      });
      follow();
    });
    group.members.forEach(function (member) {
      member.addEventListener("change", follow);
    });
  });
  follow();
})();

// A fieldset marked with `data-input-modes` (a RADIUS client's separator and code length) is
// shown only while the form's input mode is one of them; without JavaScript it stays shown.
(function () {
  "use strict";
  document.querySelectorAll("fieldset[data-input-modes]").forEach(function (fieldset) {
    var form = fieldset.closest("form");
    var select = form && form.querySelector('select[name="input_mode"]');
    if (!select) {
      return;
    }
    var modes = fieldset.getAttribute("data-input-modes").split(" ");
    function follow() {
      fieldset.hidden = modes.indexOf(select.value) < 0;
    }
    select.addEventListener("change", follow);
    follow();
  });
})();

// A new directory's kind fills in its preset's fields (the login attributes, the stable id
// attribute, the user filter) when another kind is chosen; without JavaScript the preset links
// above the form do it.
(function () {
  "use strict";
  document.querySelectorAll("select[data-presets]").forEach(function (select) {
    var form = select.closest("form");
    if (!form) {
      return;
    }
    select.addEventListener("change", function () {
      var option = select.options[select.selectedIndex];
      ["login_attributes", "id_attribute", "user_filter"].forEach(function (name) {
        var field = form.querySelector('[name="' + name + '"]');
        var value = option.getAttribute("data-" + name);
        if (field && value !== null) {
          field.value = value;
        }
      });
    });
  });
})();
