// Assessment sheet rows (.score-form) and the sheet's submit form: what the server cannot
// do from where it sits. Every rule (what fits a level, what is proposed) stays on the
// server; this file only keeps the screen from saying more than is true.
//
// - A level with fixed points fills them at once; a level whose range the typed points do
//   not fit empties them, so the server proposes points instead of refusing.
// - A value being typed is not saved yet: the row's old "saved" mark goes at once.
// - Enter in a row's field sends it (accepting proposed points), once: leaving the field
//   afterwards does not send the same value again.
// - Leaving a field that was typed in sends it even when the browser sees no change
//   (typing the proposed points over themselves).
// - The focus stays where the member put it: Tab from the level reaches the proposed
//   points with them selected, so Enter accepts them and typing replaces them.
// - Submitting the sheet says which rows show values not stored; a refused submit moves
//   to the first row it names.
// - Keys (the meeting's legend tells them): a digit on a row's level picks that level
//   (1 = the first) and moves to the points; Enter there accepts the points shown (or
//   the proposal still on its way), or sends the typed ones, and moves to the next row;
//   P outside a text field presses "take over the preliminary scores".
// - A save that cannot reach the server stays on the screen, marked, with the banner
//   shown; it goes again, with the revision it was based on, when the connection
//   returns. The server refuses it if the score changed meanwhile and shows the newer one.
(function () {
  "use strict";

  function rowForm(element) {
    return element && element.closest ? element.closest("form.score-form") : null;
  }

  function clearState(form) {
    var state = form.querySelector(".save-state");
    if (state) {
      state.textContent = "";
      state.className = "save-state";
    }
  }

  function send(input) {
    delete input.dataset.dirty;
    input.dataset.sent = input.value;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // A field sent with Enter is marked with the value sent; the browser's own change on
  // leaving it would send that value again.
  document.addEventListener("focusin", function (event) {
    if (rowForm(event.target)) delete event.target.dataset.sent;
  });

  // Capture: runs before htmx, which listens on the form and reads the values then.
  document.addEventListener("change", function (event) {
    var form = rowForm(event.target);
    if (!form) return;
    if (event.isTrusted && event.target.dataset.sent !== undefined) {
      var already = event.target.dataset.sent === event.target.value;
      delete event.target.dataset.sent;
      if (already) {
        event.stopPropagation();  // htmx, listening on the form, never sees it
        return;
      }
    }
    delete event.target.dataset.dirty;
    if (event.target.name !== "level") return;
    var points = form.querySelector("input[name=points]");
    var option = event.target.selectedOptions[0];
    clearState(form);
    if (!points || !option || !option.dataset.min) return;
    var low = Number(option.dataset.min), high = Number(option.dataset.max);
    var typed = points.value.trim();
    if (low === high) {
      points.value = String(low);
    } else if (typed === "" || !(Number(typed) >= low && Number(typed) <= high)) {
      points.value = "";
    }
    points.removeAttribute("aria-invalid");
    delete points.dataset.proposed;
    delete points.dataset.typed;  // what was typed went with the level, or does not fit it
  }, true);

  document.addEventListener("input", function (event) {
    var form = rowForm(event.target);
    if (!form || event.target.type === "hidden") return;
    event.target.dataset.dirty = "1";
    if (event.target.name === "points") event.target.dataset.typed = "1";
    event.target.removeAttribute("aria-invalid");
    delete event.target.dataset.proposed;
    clearState(form);
  });

  document.addEventListener("focusout", function (event) {
    if (rowForm(event.target) && event.target.dataset.dirty) send(event.target);
  });

  // Submitting the sheet names the rows whose screen differs from what is stored, so the
  // server refuses rather than submit values the member does not see. They are read when
  // the submit leaves the sheet's queue, after the answers of the saves ahead of it: a
  // row whose save was still on its way when the button was pressed is judged by its
  // answer.
  function unsavedRows() {
    var ids = [];
    document.querySelectorAll("form.score-form").forEach(function (form) {
      if (form.querySelector(".state-error, .state-proposed, .state-unsent, [data-dirty]")) {
        ids.push(form.querySelector("input[name=criterion]").value);
      }
    });
    return ids;
  }

  function levelOption(form) {
    var level = form.querySelector("select[name=level]");
    return level && level.selectedOptions[0];
  }

  function isRange(option) {
    return Boolean(option && option.dataset.min) && option.dataset.min !== option.dataset.max;
  }

  function focusPoints(form) {
    var points = form.querySelector("input[name=points]");
    if (!points) return;
    points.focus();
    points.select();  // typed digits replace what is shown
  }

  function focusNextRow(form) {
    var forms = Array.prototype.slice.call(document.querySelectorAll("form.score-form"));
    var next = forms[forms.indexOf(form) + 1];
    var level = next && next.querySelector("select[name=level]");
    if (level) level.focus();
  }

  // A row's form has two text fields, so Enter would not submit it anyway: it sends the
  // field typed in, or the proposed points. In the points field it also accepts a
  // proposal that has not arrived yet (sent when it does) and moves to the next row.
  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (event.key !== "Enter" || input.tagName !== "INPUT" || !rowForm(input)) return;
    if (event.isComposing) return;
    event.preventDefault();
    var form = rowForm(input);
    if (input.dataset.dirty || input.dataset.proposed !== undefined) {
      delete input.dataset.proposed;
      send(input);
    } else if (input.name === "points" && input.value.trim() === "" &&
               isRange(levelOption(form))) {
      form.dataset.accept = "1";
    }
    if (input.name === "points") focusNextRow(form);
  });

  function typingIn(element) {
    if (!element || element.isContentEditable) return Boolean(element);
    return element.tagName === "TEXTAREA" ||
      (element.tagName === "INPUT" && element.type !== "checkbox" && element.type !== "radio" &&
       element.type !== "button" && element.type !== "submit");
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    var target = event.target;
    if (/^[1-9]$/.test(event.key) && target.tagName === "SELECT" && target.name === "level") {
      var form = rowForm(target);
      if (!form) return;
      event.preventDefault();
      var levels = Array.prototype.filter.call(target.options, function (o) { return o.value; });
      var option = levels[Number(event.key) - 1];
      if (!option) return;
      if (target.value !== option.value) {
        target.value = option.value;
        target.dispatchEvent(new Event("change", { bubbles: true }));
      }
      focusPoints(form);
    } else if ((event.key === "p" || event.key === "P") && !event.repeat &&
               !typingIn(target)) {
      var button = document.querySelector("[data-take-over]");
      if (!button) return;
      event.preventDefault();
      button.click();
    }
  });

  // The row to start from (data-autofocus) gets the focus once htmx has bound the rows'
  // saves, never before: the browser's own autofocus came while a busy server was still
  // sending the page's last script, and a level picked by keyboard then was never sent.
  htmx.onLoad(function (content) {
    var first = content.querySelector && content.querySelector("[data-autofocus]");
    if (first) first.focus();
  });

  function typedPoints(form) {
    var points = form && form.querySelector("input[name=points]");
    return Boolean(points && points.dataset.typed && points.value.trim() !== "");
  }

  // The proposal for a level has come (a points field marked data-proposed, and its
  // message). Points the member typed meanwhile stand: the proposal is dropped, and the
  // typed points, sent or about to be, are what is saved. Otherwise the proposal goes
  // into the field in place, never by swapping the field: htmx would give a new field
  // the focus with the caret before the proposed points, and digits typed at once would
  // land in front of them ("12" + "13"). Selected when the member sits in it, so typing
  // replaces it; sent when the member already pressed Enter for it.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var incoming = event.detail.fragment && event.detail.fragment.firstElementChild;
    if (!target || !incoming || !rowForm(target)) return;
    var form = rowForm(target);
    if (incoming.classList.contains("state-proposed") && typedPoints(form)) {
      event.detail.shouldSwap = false;
      return;
    }
    if (target.name !== "points" || incoming.dataset.proposed === undefined) return;
    event.detail.shouldSwap = false;
    if (typedPoints(form) || target.dataset.dirty) return;
    target.value = incoming.value;
    target.dataset.proposed = incoming.dataset.proposed;
    delete target.dataset.typed;
    target.removeAttribute("aria-invalid");
    if (form.dataset.accept) {
      delete form.dataset.accept;
      delete target.dataset.proposed;
      setTimeout(function () { send(target); }, 0);  // once this answer is done with
    } else if (document.activeElement === target) {
      target.select();
    }
  });

  // --- A dropped connection -----------------------------------------------------
  function banner() { return document.getElementById("offline-banner"); }

  function showBanner(shown) {
    var element = banner();
    if (element) element.hidden = !shown;
  }

  function markRow(form, kind) {
    var state = form.querySelector(".save-state");
    var element = banner();
    if (!state || !element) return;
    state.className = "save-state state-" + (kind === "unsent" ? "unsent" : "error");
    state.textContent = element.dataset[kind];
  }

  function unsentRows() {
    return document.querySelectorAll("form.score-form[data-unsent]");
  }

  // Each row goes again as it stands, with the revision it was based on.
  function replay() {
    if (!navigator.onLine) return;
    unsentRows().forEach(function (form) {
      delete form.dataset.unsent;
      form.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }

  document.addEventListener("htmx:sendError", function (event) {
    var form = rowForm(event.detail.elt);
    if (form) {
      form.dataset.unsent = "1";
      markRow(form, "unsent");
    }
    showBanner(true);
  });

  document.addEventListener("htmx:responseError", function (event) {
    var form = rowForm(event.detail.elt);
    if (!form) return;
    if (event.detail.xhr.status >= 500) {  // the server is down or restarting: later
      form.dataset.unsent = "1";
      markRow(form, "unsent");
      showBanner(true);
    } else {
      markRow(form, "refused");
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful && navigator.onLine && !unsentRows().length) showBanner(false);
  });

  window.addEventListener("offline", function () { showBanner(true); });
  window.addEventListener("online", function () {
    if (!unsentRows().length) showBanner(false);
    replay();
  });
  // A server that did not answer, with the network up, is tried again now and then.
  setInterval(function () { if (unsentRows().length) replay(); }, 5000);
  document.addEventListener("DOMContentLoaded", function () {
    if (!navigator.onLine) showBanner(true);
  });

  // A save waits in the sheet's queue behind the others, and htmx reads the row's fields
  // only when it leaves: points being typed meanwhile ("1" of "15") would go with the
  // level picked before them, be refused, and that answer would put "1" back in the field
  // after Enter had sent "15" (which then left as "1" too). Points being typed are not
  // sent until Enter or leaving the field sends them: until then a save goes without
  // points. What each save carries is kept, so its answer knows whether the field has
  // changed since.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt.id === "submit-sheet") {
      event.detail.parameters.unsaved = unsavedRows();
      return;
    }
    var form = rowForm(event.detail.elt);
    var points = form && form.querySelector("input[name=points]");
    if (!points) return;
    if (points.dataset.dirty) event.detail.parameters.points = "";
    points.dataset.carried = points.dataset.dirty ? "" : points.value;
  });

  // An answer must not overwrite a field typed into since its request left, nor points
  // other than the ones its request carried (typed and sent after it left).
  // (A whole row, as a take-over sends, keeps a row with a field being typed in.)
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.dataset) return;
    if (target.dataset.dirty || (target.name === "points" &&
                                 target.dataset.carried !== undefined &&
                                 target.dataset.carried !== target.value) ||
        (target.classList.contains("criterion") &&
                                 target.querySelector("[data-dirty], form[data-unsent]"))) {
      event.detail.shouldSwap = false;
    }
  });

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var element = event.target;
    if (element.id === "submit-message" && element.dataset.first) {
      var row = document.getElementById("criterion-" + element.dataset.first);
      if (!row) return;
      row.scrollIntoView({ block: "center" });
      var level = row.querySelector("select[name=level]");
      if (level) level.focus({ preventScroll: true });
    }
  });
})();
