// Adding scans to an open referral: upload with a progress bar, then watch the ingest finish.
(function () {
  var form = document.getElementById("scans-form");
  if (form) {
    var box = document.getElementById("form-errors");
    var progress = document.getElementById("upload-progress");
    var bar = progress.querySelector("progress");
    var label = progress.querySelector(".progress-label");
    var button = document.getElementById("send-scans");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (button.disabled) return;
      button.disabled = true; progress.hidden = false; box.hidden = true;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action") || window.location.href);
      xhr.setRequestHeader("X-Requested-With", "fetch");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.round((e.loaded / e.total) * 100);
        bar.value = pct;
        label.textContent = pct < 100 ? "Uploading… " + pct + "% of " + (e.total / 1048576).toFixed(1) + " MB" : "Upload complete. Reading the scans…";
      });
      xhr.addEventListener("load", function () {
        var data = {};
        try { data = JSON.parse(xhr.responseText); } catch (err) { data = {error: "The server answered unexpectedly (" + xhr.status + ")."}; }
        if (xhr.status < 400 && data.redirect) { window.location.assign(data.redirect); return; }
        button.disabled = false; progress.hidden = true;
        box.textContent = data.error || "The scans were not saved."; box.hidden = false;
      });
      xhr.addEventListener("error", function () {
        button.disabled = false; progress.hidden = true;
        box.textContent = "The connection was lost during the upload. Nothing was saved; please try again."; box.hidden = false;
      });
      xhr.send(new FormData(form));
    });
  }

  var status = document.getElementById("ingest");
  if (status && !status.dataset.finished) {
    var STATES = {queued: "Waiting to be read", running: "Reading the scans", done: "Finished", failed: "Failed"};
    var poll = function () {
      fetch(status.dataset.url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (p) {
          document.getElementById("ingest-state").textContent = STATES[p.status] || p.status;
          var bar = document.getElementById("ingest-bar");
          bar.max = Math.max(1, p.total); bar.value = p.processed;
          document.getElementById("ingest-count").textContent = p.processed + " of " + p.total + " file(s) read.";
          document.getElementById("ingest-summary").textContent = p.summary || p.error || "";
          var list = document.getElementById("ingest-rejected");
          list.textContent = "";
          p.rejected.forEach(function (r) { var li = document.createElement("li"); li.textContent = r.name + ": " + r.reason; list.appendChild(li); });
          if (p.status === "queued" || p.status === "running") setTimeout(poll, 1000);
          // A study naming another patient: reload once, so the page shows the warning with its decision form.
          else if (p.identity_questions && !document.getElementById("identity-warning")) window.location.reload();
        });
    };
    poll();
  }
})();
