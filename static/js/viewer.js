// Scan viewer (templates/imaging/_viewer.html), standalone or embedded beside the opinion.
// Wheel, arrow keys and the slider scroll; drag sets window/level or pans; Ctrl+wheel zooms;
// neighbours are preloaded at the current window so scrolling never waits on the server.
// Slices are JPEG while working (fast to render and decode); key images are kept as PNG on the server.
(function () {
  var root = document.querySelector(".dicom-viewer");
  if (!root) return;
  var caseUrl = root.dataset.caseUrl;
  var markUrl = root.dataset.markUrl;
  var $ = function (sel) { return root.querySelector(sel); };
  var img = $("#slice-image"), viewport = $("#viewport"), slider = $("#slice-slider");
  var preset = $("#preset"), readout = $("#slice-readout"), wlReadout = $("#wl-readout");
  var zoomReadout = $("#zoom-readout"), seriesLabel = $("#series-label");
  var keyList = $("#key-image-list"), noKeys = $("#no-key-images");
  var header = $("#dicom-header");
  var PRELOAD = 6;

  var series = null;           // JSON from /series/<id>.json
  var index = 0;
  var wc = null, ww = null;    // null: the file's own window
  var zoom = 1, panX = 0, panY = 0;
  var tool = "window";
  var cache = {};              // url -> Image, so preloaded slices stay decoded
  var loading = false, wanted = null;

  function url(i) {
    var q = (wc !== null && ww !== null) ? "?wc=" + encodeURIComponent(Math.round(wc)) + "&ww=" + encodeURIComponent(Math.max(1, Math.round(ww))) : "";
    return series.render_base + i + ".jpg" + q;
  }
  function preload(i) {
    if (i < 0 || i >= series.count) return;
    var u = url(i);
    if (cache[u]) return;
    var im = new Image(); im.src = u; cache[u] = im;
  }
  // Only one request for the displayed image in flight: a fast drag asks for the newest window once the last one arrived.
  function request(u) {
    wanted = u;
    if (loading) return;
    if (img.getAttribute("src") === u) return;
    loading = true;
    img.src = u;
  }
  img.addEventListener("load", function () { loading = false; if (wanted && wanted !== img.getAttribute("src")) request(wanted); });
  img.addEventListener("error", function () { loading = false; });

  function fmt(n) { return Math.round(n); }
  function updateReadouts() {
    var s = series.slices[index] || {};
    readout.textContent = "Slice " + (index + 1) + " / " + series.count +
      (s.position !== null && s.position !== undefined ? " · position " + s.position.toFixed(1) + " mm" : "") +
      (s.instance_number !== null && s.instance_number !== undefined ? " · image " + s.instance_number : "") +
      (s.frame ? " · frame " + (s.frame + 1) : "");
    wlReadout.textContent = (wc !== null) ? "W " + fmt(ww) + " / L " + fmt(wc) : "Window from the file";
    zoomReadout.textContent = zoom !== 1 ? "Zoom " + zoom.toFixed(1) + "×" : "";
    seriesLabel.textContent = series.label;
  }
  function applyTransform() {
    img.style.transform = "translate(" + panX + "px, " + panY + "px) scale(" + zoom + ")";
  }
  function show(i) {
    if (!series || series.count === 0) return;
    index = Math.max(0, Math.min(series.count - 1, i));
    slider.value = index;
    request(url(index));
    updateReadouts();
    for (var d = 1; d <= PRELOAD; d++) { preload(index + d); preload(index - d); }
    if (header.open) loadHeader();
  }
  function setWindow(c, w) {
    wc = c; ww = w;
    cache = {};
    show(index);
  }

  function loadSeries(id, thenIndex) {
    fetch(caseUrl + "/series/" + id + ".json", {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        series = data;
        cache = {};
        root.querySelectorAll(".series-pick").forEach(function (b) { b.classList.toggle("current", b.dataset.seriesId === String(id)); });
        slider.max = Math.max(0, data.count - 1);
        preset.querySelectorAll("option[data-ct-only]").forEach(function (o) { o.hidden = data.modality !== "CT"; });
        renderKeyImages();
        resetView(false);
        show(thenIndex !== undefined ? thenIndex : Math.floor(data.count / 2));
        if (root.dataset.autofocus) viewport.focus();
        root.dispatchEvent(new CustomEvent("viewer:series", {detail: data}));
      });
  }
  function resetView(redraw) {
    zoom = 1; panX = 0; panY = 0; applyTransform();
    wc = null; ww = null; preset.value = "";
    if (redraw) { cache = {}; show(index); }
  }

  // --- scrolling
  viewport.addEventListener("wheel", function (e) {
    e.preventDefault();
    if (e.ctrlKey) { zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15); return; }
    show(index + (e.deltaY > 0 ? 1 : -1));
  }, {passive: false});
  viewport.addEventListener("keydown", function (e) {
    var k = e.key;
    if (k === "ArrowDown" || k === "ArrowRight" || k === "PageDown") { e.preventDefault(); show(index + (k === "PageDown" ? 10 : 1)); }
    else if (k === "ArrowUp" || k === "ArrowLeft" || k === "PageUp") { e.preventDefault(); show(index - (k === "PageUp" ? 10 : 1)); }
    else if (k === "Home") { e.preventDefault(); show(0); }
    else if (k === "End") { e.preventDefault(); show(series.count - 1); }
    else if (k === "+" || k === "=") zoomBy(1.25);
    else if (k === "-") zoomBy(0.8);
    else if (k === "r" || k === "R") resetView(true);
  });
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });

  // --- window/level and pan by dragging
  var drag = null;
  function startWindow() {
    if (wc !== null) return;
    var fw = series.file_window;
    if (fw && fw.width) { wc = fw.center; ww = fw.width; }
    else if (series.modality === "CT") { wc = 40; ww = 400; }
    else { wc = 500; ww = 1000; }
  }
  viewport.addEventListener("mousedown", function (e) {
    if (e.button !== 0) return;
    e.preventDefault();
    viewport.focus();
    var mode = (tool === "pan" || e.shiftKey) ? "pan" : "window";
    drag = {mode: mode, x: e.clientX, y: e.clientY, wc: null, ww: null, panX: panX, panY: panY, moved: false};
  });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.mode === "pan") { panX = drag.panX + dx; panY = drag.panY + dy; applyTransform(); return; }
    if (!drag.moved) {  // a click without movement must not leave the file's window
      if (Math.abs(dx) + Math.abs(dy) < 2) return;
      startWindow(); drag.wc = wc; drag.ww = ww; drag.moved = true;
    }
    // About one grey level per pixel for a 1000-wide window; faster for wide windows.
    var scale = Math.max(1, drag.ww / 256);
    wc = drag.wc + dy * scale;
    ww = Math.max(1, drag.ww + dx * scale * 2);
    preset.value = "";
    cache = {};
    request(url(index));
    updateReadouts();
  });
  window.addEventListener("mouseup", function () {
    if (drag && drag.moved) show(index);  // preload neighbours at the new window
    drag = null;
  });
  preset.addEventListener("change", function () {
    if (!preset.value) setWindow(null, null);
    else { var p = preset.value.split(","); setWindow(parseFloat(p[0]), parseFloat(p[1])); }
    viewport.focus();
  });
  root.querySelectorAll(".tool").forEach(function (b) {
    b.addEventListener("click", function () {
      tool = b.dataset.tool;
      root.querySelectorAll(".tool").forEach(function (o) { o.classList.toggle("active", o === b); o.setAttribute("aria-pressed", o === b ? "true" : "false"); });
      viewport.classList.toggle("panning", tool === "pan");
      viewport.focus();
    });
  });
  function zoomBy(f) { zoom = Math.max(0.25, Math.min(8, zoom * f)); applyTransform(); updateReadouts(); }
  root.querySelector("[data-action=zoom-in]").addEventListener("click", function () { zoomBy(1.25); });
  root.querySelector("[data-action=zoom-out]").addEventListener("click", function () { zoomBy(0.8); });
  root.querySelector("[data-action=reset]").addEventListener("click", function () { resetView(true); viewport.focus(); });

  root.querySelectorAll(".series-pick").forEach(function (b) {
    b.addEventListener("click", function () { loadSeries(b.dataset.seriesId); });
  });

  // --- DICOM header panel
  function loadHeader() {
    var body = header.querySelector("tbody");
    fetch(caseUrl + "/series/" + series.id + "/slices/" + index + "/header.json", {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        body.textContent = "";
        (data.elements || []).forEach(function (el) {
          var tr = document.createElement("tr");
          [el.tag, el.name, el.vr, el.value].forEach(function (v) { var td = document.createElement("td"); td.textContent = v; tr.appendChild(td); });
          body.appendChild(tr);
        });
      });
  }
  header.addEventListener("toggle", function () { if (header.open) loadHeader(); });

  // --- key images
  function renderKeyImages() {
    keyList.textContent = "";
    (series.key_images || []).forEach(function (k) {
      var li = document.createElement("li");
      li.dataset.keyImageId = k.id;
      var go = document.createElement("button");
      go.type = "button"; go.className = "link";
      go.textContent = "Slice " + (k.slice_index + 1) + " · " + k.window_label + (k.caption ? " · " + k.caption : "");
      go.addEventListener("click", function () {
        if (k.center !== null) { wc = k.center; ww = k.width; preset.value = ""; } else { wc = null; ww = null; }
        cache = {}; show(k.slice_index); viewport.focus();
      });
      li.appendChild(go);
      if (markUrl && form) {
        var rm = document.createElement("button");
        rm.type = "button"; rm.className = "link danger unmark"; rm.textContent = "Remove";
        rm.addEventListener("click", function () { post(k.unmark_url, new FormData()).then(function () {
          series.key_images = series.key_images.filter(function (o) { return o.id !== k.id; });
          renderKeyImages();
        }); });
        li.appendChild(rm);
      }
      keyList.appendChild(li);
    });
    noKeys.hidden = (series.key_images || []).length > 0;
  }
  var form = $("#key-image-form");
  var keyStatus = $("#key-status");
  function post(target, data) {
    var token = form ? form.querySelector("input[name=csrf_token]") : null;
    if (token && !data.has("csrf_token")) data.append("csrf_token", token.value);
    return fetch(target, {method: "POST", body: data, credentials: "same-origin",
                          headers: {"X-Requested-With": "fetch", "Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || "Not saved."); return j; }); })
      .catch(function (err) { if (keyStatus) keyStatus.textContent = err.message; throw err; });
  }
  if (form) {
    var caption = $("#key-caption");
    caption.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); mark(); } });
    $("#mark-key").addEventListener("click", mark);
  }
  function mark() {
    var data = new FormData();
    data.append("series_id", series.id);
    data.append("slice_index", index);
    if (wc !== null) { data.append("window_center", Math.round(wc)); data.append("window_width", Math.max(1, Math.round(ww))); }
    data.append("caption", $("#key-caption").value);
    keyStatus.textContent = "Saving…";
    post(markUrl, data).then(function (j) {
      series.key_images = (series.key_images || []).filter(function (o) { return o.slice_index !== j.key_image.slice_index; });
      series.key_images.push(j.key_image);
      series.key_images.sort(function (a, b) { return a.slice_index - b.slice_index; });
      renderKeyImages();
      $("#key-caption").value = "";
      keyStatus.textContent = "Key image kept (slice " + (j.key_image.slice_index + 1) + ").";
    });
  }

  loadSeries(root.dataset.initialSeries);
})();
