// Ticks the password rules as a person types. The server checks the same rules on submit
// (rollcall::domain::PasswordPolicy::check); without this script the page still lists every
// broken rule after a refused submit.
(function () {
  "use strict";
  var form = document.getElementById("password-form");
  var input = document.getElementById("password");
  if (!form || !input) {
    return;
  }
  var d = form.dataset;
  var symbols = d.symbols || "";
  var chars = function (p) { return Array.from(p); };
  var isSymbol = function (c) { return symbols.indexOf(c) >= 0; };
  var asciiLower = function (s) { return s.replace(/[A-Z]/g, function (c) { return c.toLowerCase(); }); };
  var checks = {
    password_too_short: function (p) { return chars(p).length >= Number(d.min); },
    password_too_long: function (p) { return chars(p).length <= Number(d.max); },
    password_needs_upper: function (p) { return /[A-Z]/.test(p); },
    password_needs_lower: function (p) { return /[a-z]/.test(p); },
    password_needs_digit: function (p) { return /[0-9]/.test(p); },
    password_needs_symbol: function (p) { return chars(p).some(isSymbol); },
    password_disallowed_character: function (p) {
      return chars(p).every(function (c) { return /[A-Za-z0-9]/.test(c) || isSymbol(c); });
    },
    password_same_as_login_id: function (p) { return asciiLower(p) !== asciiLower(d.login || ""); }
  };
  var tick = function () {
    var p = input.value;
    form.querySelectorAll("#rules li").forEach(function (li) {
      var check = checks[li.dataset.rule];
      if (!check) {
        return;
      }
      var met = check(p);
      li.className = met ? "met" : "broken";
      var state = li.querySelector(".state");
      if (state) {
        state.textContent = met ? d.met : d.unmet;
      }
    });
  };
  input.addEventListener("input", tick);
})();
