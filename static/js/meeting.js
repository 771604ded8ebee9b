// The meeting page: the chair's one key, the poll's reloads kept from cutting off a
// navigation, and the agenda filters applied as they change.
// A static file, as the CSP allows no inline script.
(function () {
  "use strict";

  function typingIn(element) {
    if (!element || element === document.body) return false;
    if (element.isContentEditable) return true;
    var tag = element.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  var sent = false;
  document.addEventListener("keydown", function (event) {
    var button = document.querySelector("[data-settle-next]");
    if (!button || sent || event.repeat || event.isComposing) return;
    var ctrlEnter = event.key === "Enter" && (event.ctrlKey || event.metaKey) &&
      !event.altKey && !event.shiftKey;
    var plainN = (event.key === "n" || event.key === "N") && !event.ctrlKey &&
      !event.metaKey && !event.altKey && !typingIn(event.target);
    if (!ctrlEnter && !plainN) return;
    event.preventDefault();
    sent = true;  // one key, one decision: a held or repeated key sends nothing more
    button.click();
  });

  // The poll reloads the page when the chair has moved on or set a grade. Once the page
  // is being left (the chair's settle, a move, a filter), such an answer is the page's own
  // decision coming back: reloading would abort the navigation under way, and with it the
  // answer that says what happened.
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  window.addEventListener("pageshow", function () { leaving = false; });
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail.xhr;
    if (leaving && xhr && xhr.getResponseHeader("HX-Refresh") === "true") {
      event.preventDefault();
    }
  });

  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form[data-autosubmit]");
    if (form) form.requestSubmit();
  });
})();
