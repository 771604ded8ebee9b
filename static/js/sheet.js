// Assessment sheet rows (.score-form) and the sheet's submit form: what the server cannot
// do from where it sits. Every rule (what fits a level, what is proposed) stays on the
// server; this file only keeps the screen from saying more than is true.
//
// - A level with fixed points fills them at once; a level whose range the typed points do
//   not fit empties them, so the server proposes points instead of refusing.
// - A value being typed is not saved yet: the row's old "saved" mark goes at once.
// - Enter in a row's field sends it (accepting proposed points).
// - Leaving a field that was typed in sends it even when the browser sees no change
//   (typing the proposed points over themselves).
// - The focus stays where the member put it: Tab from the level reaches the proposed
//   points with them selected, so Enter accepts them and typing replaces them.
// - Submitting the sheet says which rows show values not stored; a refused submit moves
//   to the first row it names.
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
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // Capture: runs before htmx, which listens on the form and reads the values then.
  document.addEventListener("change", function (event) {
    var form = rowForm(event.target);
    if (!form) return;
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
  }, true);

  document.addEventListener("input", function (event) {
    var form = rowForm(event.target);
    if (!form || event.target.type === "hidden") return;
    event.target.dataset.dirty = "1";
    event.target.removeAttribute("aria-invalid");
    delete event.target.dataset.proposed;
    clearState(form);
  });

  document.addEventListener("focusout", function (event) {
    if (rowForm(event.target) && event.target.dataset.dirty) send(event.target);
  });

  // Submitting the sheet names the rows whose screen differs from what is stored, so the
  // server refuses rather than submit values the member does not see.
  document.addEventListener("submit", function (event) {
    var sheet = event.target;
    if (sheet.id !== "submit-sheet") return;
    sheet.querySelectorAll("input[name=unsaved]").forEach(function (old) { old.remove(); });
    document.querySelectorAll("form.score-form").forEach(function (form) {
      if (!form.querySelector(".state-error, .state-proposed, [data-dirty]")) return;
      var mark = document.createElement("input");
      mark.type = "hidden";
      mark.name = "unsaved";
      mark.value = form.querySelector("input[name=criterion]").value;
      sheet.appendChild(mark);
    });
  }, true);

  // A row's form has two text fields, so Enter would not submit it anyway: it sends the
  // field typed in, or the proposed points, and otherwise does nothing.
  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (event.key !== "Enter" || input.tagName !== "INPUT" || !rowForm(input)) return;
    event.preventDefault();
    if (input.dataset.dirty || input.dataset.proposed !== undefined) {
      delete input.dataset.proposed;
      send(input);
    }
  });

  // An answer must not overwrite a field typed into since its request left.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.dataset && target.dataset.dirty) event.detail.shouldSwap = false;
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
