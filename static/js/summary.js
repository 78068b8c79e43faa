// The summary for the patient saves itself while the lead types, and the server answers with the reading
// level (one formula, computed there), which we show beside the text. Every save names the version it is
// based on: a stale tab is refused (409) and told so, never allowed to overwrite.
(function () {
  "use strict";
  var form = document.getElementById("summary-form");
  if (!form) { return; }
  var state = document.getElementById("save-state");
  var problem = document.getElementById("save-problem");
  var signForm = document.getElementById("summary-sign-form");
  var panel = document.getElementById("reading-level");
  var grade = document.getElementById("reading-grade");
  var label = document.getElementById("reading-label");
  var missing = document.getElementById("summary-missing");
  var DELAY = 800;
  var timer = null;
  var inFlight = null;
  var dirty = false;
  var blocked = false;

  function token() { var f = form.querySelector("input[name=csrf_token]"); return f ? f.value : ""; }
  function show(text, kind) { state.textContent = text; state.setAttribute("data-state", kind); }
  function showProblem(text) { problem.textContent = text || ""; problem.hidden = !text; }

  function showLevel(data) {
    grade.textContent = data.grade === null || data.grade === undefined ? "–" : Number(data.grade).toFixed(1);
    label.textContent = data.grade_label || "";
    panel.setAttribute("data-state", data.grade_on_target ? "good" : "high");
    if (missing) {
      var items = data.missing || [];
      missing.hidden = items.length === 0;
      missing.querySelector("span").textContent = items.join(", ");
    }
  }

  function schedule() {
    dirty = true;
    if (blocked) { return; }
    show("Unsaved changes…", "dirty");
    clearTimeout(timer);
    timer = setTimeout(save, DELAY);
  }

  function refreshToken() {
    return fetch(form.getAttribute("data-token-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return false; }
        document.querySelectorAll("input[name=csrf_token]").forEach(function (f) { f.value = data.csrf_token; });
        return true;
      })
      .catch(function () { return false; });
  }

  function save(retried) {
    clearTimeout(timer);
    timer = null;
    if (inFlight) { return inFlight.then(function () { return dirty ? save() : true; }); }
    if (blocked) { return Promise.resolve(false); }
    dirty = false;
    show("Saving…", "saving");
    inFlight = fetch(form.getAttribute("data-autosave-url"), {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: {"X-CSRFToken": token(), "X-Requested-With": "fetch", "Accept": "application/json"}
    })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) { return {status: r.status, data: data}; });
      })
      .then(function (res) {
        if (res.status === 200) {
          document.querySelectorAll("input[name=version]").forEach(function (f) { f.value = res.data.version; });
          showProblem("");
          show(res.data.saved_label, "saved");
          showLevel(res.data);
          if (dirty) { schedule(); }
          return true;
        }
        var message = res.data.error || "The summary could not be saved.";
        if (res.status === 409 || res.status === 403 || res.status === 404) {
          blocked = true;
          dirty = true;
          show("Not saved", "conflict");
          showProblem(message);
          if (signForm) { signForm.querySelector("button[type=submit]").disabled = true; }
          return false;
        }
        if ((res.status === 400 || res.status === 401) && !retried) {
          return refreshToken().then(function (ok) {
            if (ok) { return save(true); }
            dirty = true; show("Not saved", "error"); showProblem(message); return false;
          });
        }
        dirty = true;
        show("Not saved", "error");
        showProblem(message);
        return false;
      })
      .catch(function () {
        dirty = true;
        show("Not saved: no connection. Retrying…", "error");
        timer = setTimeout(save, 5000);
        return false;
      })
      .finally(function () { inFlight = null; });
    return inFlight;
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  form.addEventListener("submit", function (event) {
    if (timer || inFlight || dirty) {
      event.preventDefault();
      save().then(function (ok) { if (ok) { form.submit(); } });
    }
  });
  // Never sign words that are not saved yet.
  if (signForm) {
    signForm.addEventListener("submit", function (event) {
      if (timer || inFlight || dirty) {
        event.preventDefault();
        save().then(function (ok) { if (ok) { signForm.submit(); } });
      }
    });
  }
})();
