// Referral form: extra history rows, and an upload with a visible progress bar.
(function () {
  var form = document.getElementById("referral-form");
  if (!form) return;
  var rows = document.getElementById("history-rows");
  document.getElementById("add-history").addEventListener("click", function () {
    var all = rows.querySelectorAll(".history-row");
    if (all.length >= 30) return;
    var clone = all[all.length - 1].cloneNode(true);
    var n = all.length;
    clone.querySelectorAll("input, select, textarea, label").forEach(function (el) {
      ["name", "id", "for"].forEach(function (attr) {
        var v = el.getAttribute(attr);
        if (v) el.setAttribute(attr, v.replace(/history-\d+-/, "history-" + n + "-"));
      });
      if (el.tagName !== "LABEL") el.value = "";
    });
    clone.querySelectorAll(".error").forEach(function (e) { e.remove(); });
    rows.appendChild(clone);
  });

  var box = document.getElementById("form-errors");
  var progress = document.getElementById("upload-progress");
  var bar = progress.querySelector("progress");
  var label = progress.querySelector(".progress-label");
  var button = document.getElementById("submit-referral");

  function showError(message, fields) {
    box.textContent = message;
    box.hidden = false;
    form.querySelectorAll(".error.js").forEach(function (e) { e.remove(); });
    Object.keys(fields || {}).forEach(function (id) {
      var input = document.getElementById(id);
      if (!input) return;
      fields[id].forEach(function (msg) {
        var small = document.createElement("small");
        small.className = "error js";
        small.textContent = msg;
        input.parentNode.appendChild(small);
      });
    });
    window.scrollTo(0, 0);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (button.disabled) return;  // a double click must not send the case twice
    button.disabled = true;
    progress.hidden = false;
    box.hidden = true;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("action") || window.location.href);
    xhr.setRequestHeader("X-Requested-With", "fetch");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      var pct = Math.round((e.loaded / e.total) * 100);
      bar.value = pct;
      label.textContent = pct < 100 ? "Uploading… " + pct + "% of " + (e.total / 1048576).toFixed(1) + " MB"
                                    : "Upload complete. Reading the scans…";
    });
    xhr.addEventListener("load", function () {
      var data = {};
      try { data = JSON.parse(xhr.responseText); } catch (err) { data = {error: "The server answered unexpectedly (" + xhr.status + ")."}; }
      if (xhr.status < 400 && data.redirect) { window.location.assign(data.redirect); return; }
      button.disabled = false;
      progress.hidden = true;
      showError(data.error || "The referral was not saved.", data.fields);
    });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      progress.hidden = true;
      showError("The connection was lost during the upload. Nothing was saved; please try again.", {});
    });
    xhr.send(new FormData(form));
  });
})();
