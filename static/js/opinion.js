// The opinion page saves the draft while the reviewer types (no work lost on a closed tab or an
// expired session) and shows when it was last saved. Every save says which draft version it is
// based on; the server refuses a stale one (another tab saved since) and we say so instead of
// overwriting. Nothing is kept in localStorage: patient data must not stay on a shared workstation.
(function () {
  "use strict";
  var form = document.getElementById("opinion-form");
  if (!form) { return; }
  var state = document.getElementById("save-state");
  var problem = document.getElementById("save-problem");
  var signForm = document.getElementById("sign-form");
  var DELAY = 1200;
  var timer = null;
  var inFlight = null;
  var dirty = false;
  var blocked = false;
  var recovering = null;

  function versionFields() { return document.querySelectorAll("input[name=version]"); }
  function tokenFields() { return document.querySelectorAll("input[name=csrf_token]"); }
  function token() { var f = form.querySelector("input[name=csrf_token]"); return f ? f.value : ""; }

  function show(text, kind) { state.textContent = text; state.setAttribute("data-state", kind); }

  function showProblem(text, withLoginLink) {
    problem.textContent = text || "";
    if (withLoginLink) {
      var a = document.createElement("a");
      a.href = form.getAttribute("data-login-url");
      a.target = "_blank";
      a.rel = "noopener";
      a.textContent = "Log in again (opens a new tab)";
      problem.appendChild(document.createTextNode(" "));
      problem.appendChild(a);
    }
    problem.hidden = !text;
  }

  function schedule() {
    dirty = true;
    if (blocked) { return; }
    show("Unsaved changes…", "dirty");
    clearTimeout(timer);
    timer = setTimeout(save, DELAY);
  }

  function request(keepalive) {
    return fetch(form.getAttribute("data-autosave-url"), {
      method: "POST", body: new FormData(form), credentials: "same-origin", keepalive: !!keepalive,
      headers: {"X-CSRFToken": token(), "X-Requested-With": "fetch", "Accept": "application/json"}
    });
  }

  // Fetch a fresh CSRF token. Resolves true when the session is alive again, false when still logged out.
  function refreshToken() {
    return fetch(form.getAttribute("data-token-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) {
        var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        if (!r.ok || r.redirected || !json) { return false; }
        return r.json().then(function (data) {
          tokenFields().forEach(function (f) { f.value = data.csrf_token; });
          return true;
        });
      })
      .catch(function () { return false; });
  }

  // After a 400/401 we cannot tell an expired session from bad input without asking: try a new token.
  function recover(message, retried) {
    if (retried) { return Promise.resolve(fail(message)); }
    return refreshToken().then(function (alive) {
      if (alive) { return save(true); }
      show("Not saved: your session has expired", "error");
      showProblem("Your session has expired. Your text is still on this page; log in again and it will be saved here automatically.", true);
      if (!recovering) {
        recovering = setInterval(function () {
          refreshToken().then(function (ok) {
            if (ok) { clearInterval(recovering); recovering = null; showProblem(""); save(true); }
          });
        }, 5000);
      }
      dirty = true;
      return false;
    });
  }

  function fail(message) {
    dirty = true;
    show("Not saved", "error");
    showProblem(message);
    return false;
  }

  function save(retried) {
    clearTimeout(timer);
    timer = null;
    if (inFlight) { return inFlight.then(function () { return dirty ? save() : true; }); }
    if (blocked) { return Promise.resolve(false); }
    dirty = false;
    show("Saving…", "saving");
    inFlight = request(false)
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) { return {status: r.status, data: data}; });
      })
      .then(function (res) {
        if (res.status === 200) {
          versionFields().forEach(function (f) { f.value = res.data.version; });
          showProblem("");
          show(res.data.saved_label, "saved");
          if (dirty) { schedule(); }
          return true;
        }
        var message = res.data.error || "The draft could not be saved.";
        if (res.status === 409 || res.status === 403 || res.status === 404) {
          // Another tab saved newer text, or the case moved on: never overwrite, keep this text on screen.
          blocked = true;
          dirty = true;
          show("Not saved", "conflict");
          showProblem(message);
          if (signForm) { signForm.querySelector("button[type=submit]").disabled = true; }
          return false;
        }
        if (res.status === 400 || res.status === 401) { return recover(message, retried); }
        return fail(message + " Retrying shortly.");
      })
      .catch(function () {
        dirty = true;
        show("Not saved: no connection. Retrying…", "error");
        clearTimeout(timer);
        timer = setTimeout(save, 5000);
        return false;
      })
      .finally(function () { inFlight = null; });
    return inFlight;
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);

  // The plain "Save draft" button still works without JavaScript; with it, finish any pending save first
  // so the page's version is current.
  form.addEventListener("submit", function (event) {
    if (timer || inFlight || dirty) {
      event.preventDefault();
      save().then(function (ok) { if (ok) { form.submit(); } });
    }
  });

  // Never sign text that is not saved yet.
  if (signForm) {
    signForm.addEventListener("submit", function (event) {
      if (timer || inFlight || dirty) {
        event.preventDefault();
        save().then(function (ok) { if (ok) { signForm.submit(); } });
      }
    });
  }

  // Closing the tab: send what is unsaved with keepalive so it survives the page going away.
  window.addEventListener("pagehide", function () {
    if ((timer || dirty) && !blocked) { clearTimeout(timer); request(true); }
  });
  window.addEventListener("beforeunload", function (event) {
    if (blocked) { event.preventDefault(); event.returnValue = ""; }
  });

  // RADPEER asks for a comment from 2b up: mark the field as required while such a score is chosen.
  var comment = form.querySelector(".radpeer-comment");
  function markComment() {
    var chosen = form.querySelector("input[name=radpeer_score]:checked");
    var needed = chosen && ["2b", "3a", "3b"].indexOf(chosen.value) >= 0;
    if (comment) { comment.classList.toggle("required", !!needed); }
  }
  if (comment) {
    form.querySelectorAll("input[name=radpeer_score]").forEach(function (r) { r.addEventListener("change", markComment); });
    markComment();
  }
})();
