// Slice viewer: wheel, arrow keys and slider scroll; presets set window/level; neighbours are preloaded.
(function () {
  var viewer = document.getElementById("viewer");
  if (!viewer) return;
  var base = viewer.dataset.base;            // ".../slices/" ; index + ".png" is appended
  var count = parseInt(viewer.dataset.count, 10) || 0;
  var positions = (viewer.dataset.positions || "").split("|");
  var img = document.getElementById("slice-image");
  var slider = document.getElementById("slice-slider");
  var preset = document.getElementById("preset");
  var readout = document.getElementById("slice-readout");
  var wl = document.getElementById("wl-readout");
  var viewport = document.getElementById("viewport");
  var index = parseInt(slider.value, 10) || 0;
  var cache = {};

  function url(i) {
    var q = preset.value ? "?wc=" + encodeURIComponent(preset.value.split(",")[0]) + "&ww=" + encodeURIComponent(preset.value.split(",")[1]) : "";
    return base + i + ".png" + q;
  }
  function preload(i) {
    if (i < 0 || i >= count) return;
    var u = url(i);
    if (cache[u]) return;
    var im = new Image(); im.src = u; cache[u] = im;
  }
  function show(i) {
    if (count === 0) return;
    index = Math.max(0, Math.min(count - 1, i));
    img.src = url(index);
    slider.value = index;
    var pos = positions[index];
    readout.textContent = "Slice " + (index + 1) + " / " + count + (pos ? " · position " + parseFloat(pos).toFixed(1) + " mm" : "");
    wl.textContent = preset.value ? "W/L " + preset.value.split(",")[1] + "/" + preset.value.split(",")[0] : "Window from the file";
    for (var d = 1; d <= 3; d++) { preload(index + d); preload(index - d); }
  }
  viewport.addEventListener("wheel", function (e) { e.preventDefault(); show(index + (e.deltaY > 0 ? 1 : -1)); }, {passive: false});
  viewport.addEventListener("keydown", function (e) {
    if (e.key === "ArrowDown" || e.key === "ArrowRight" || e.key === "PageDown") { e.preventDefault(); show(index + 1); }
    if (e.key === "ArrowUp" || e.key === "ArrowLeft" || e.key === "PageUp") { e.preventDefault(); show(index - 1); }
    if (e.key === "Home") show(0);
    if (e.key === "End") show(count - 1);
  });
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
  preset.addEventListener("change", function () { cache = {}; show(index); viewport.focus(); });
  show(index);
  viewport.focus();
})();
