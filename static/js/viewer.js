// Scan viewer (templates/imaging/_viewer.html), standalone or embedded beside the opinion. See docs/viewer.md.
// The server sends each frame's stored values once (/cases/<id>/instances/<id>/frames/<n>/pixels, a raw
// little-endian typed array, gzip on the wire); window/level, invert, zoom and pan happen here, on a canvas
// (WebGL 2 when the browser has it, the 2D canvas otherwise), so dragging the window costs the server nothing.
// Frames stay in an in-page cache bounded by bytes (LRU), filled ahead of the scroll direction.
//
// Public interface for the measurement tools (static/js/measure.js), kept stable:
//   window.PortalViewer = {viewports, registerTool(name, tool), on(event, cb)}
//   viewport: el, imageCanvas, overlayCanvas, current(), imageToCanvas(x, y), canvasToImage(x, y), render(),
//             setTool(name), goTo(sopInstanceUid, frame), window -> {center, width}
//   events: 'render' (viewport, ctx2d of overlayCanvas, in CSS px) after each draw; 'frame' (viewport) on a new frame.
//   Image coordinates: x along columns, y along rows, pixel (c, r) covers [c, c+1) x [r, r+1).
(function () {
  "use strict";
  var listeners = {}, tools = {}, toolOrder = [], ui = null;
  var PV = window.PortalViewer = {viewports: [], tools: tools};
  PV.on = function (name, cb) { (listeners[name] = listeners[name] || []).push(cb); };
  function emit(name) {
    var args = Array.prototype.slice.call(arguments, 1);
    (listeners[name] || []).forEach(function (cb) { try { cb.apply(null, args); } catch (e) { if (window.console) console.error(e); } });
  }
  PV.registerTool = function (name, tool) {
    if (!tools[name]) toolOrder.push(name);
    tools[name] = tool;
    if (ui) ui.toolButton(name, tool);
  };

  var root = document.querySelector(".dicom-viewer");
  if (!root) return;
  var caseUrl = root.dataset.caseUrl, markUrl = root.dataset.markUrl;
  var $ = function (sel) { return root.querySelector(sel); };
  var slider = $("#slice-slider"), preset = $("#preset"), wlReadout = $("#wl-readout");
  var keyList = $("#key-image-list"), noKeys = $("#no-key-images"), header = $("#dicom-header");
  var fpsInput = $("#cine-fps"), syncScroll = $("#sync-scroll"), linkWindow = $("#link-window");
  var smallScreen = Math.min(screen.width || 1024, screen.height || 768) < 700 || (navigator.deviceMemory || 8) <= 2;
  var cacheLimit = (parseFloat(root.dataset.cacheMb) || (smallScreen ? 96 : 256)) * 1024 * 1024;
  var rendererChoice = root.dataset.renderer || (new URLSearchParams(location.search).get("renderer")) || "auto";

  // ------------------------------------------------------------------ frame cache and loading
  var cache = new Map(), cacheUsed = 0, pinned = new Set();
  var stats = PV.stats = {requests: 0, bytes: 0, hits: 0};
  PV.cacheInfo = function () { return {frames: cache.size, bytes: cacheUsed, limit: cacheLimit}; };
  PV.cachedUrls = function () { return Array.from(cache.keys()); };
  function cacheGet(url) {
    var f = cache.get(url);
    if (f) { cache.delete(url); cache.set(url, f); }
    return f;
  }
  function cacheGrow(n) {
    cacheUsed += n;
    var it = cache.keys();
    while (cacheUsed > cacheLimit) {
      var next = it.next();
      if (next.done) break;
      if (pinned.has(next.value)) continue;
      cacheUsed -= cache.get(next.value).bytes;
      cache.delete(next.value);
    }
  }
  function cachePut(url, frame) { cache.set(url, frame); cacheGrow(frame.bytes); }

  var inflight = new Map(), queue = [], active = 0, MAX_PARALLEL = 4;
  function makeFrame(buf, headers) {
    var dtype = headers.get("X-Pixel-Dtype"), samples = parseInt(headers.get("X-Samples") || "1", 10);
    var data = dtype === "int16" ? new Int16Array(buf) : dtype === "uint16" ? new Uint16Array(buf) : new Uint8Array(buf);
    var lo = Infinity, hi = -Infinity;
    if (samples === 1) { for (var i = 0; i < data.length; i++) { var v = data[i]; if (v < lo) lo = v; if (v > hi) hi = v; } }
    return {rows: parseInt(headers.get("X-Rows"), 10), columns: parseInt(headers.get("X-Columns"), 10), samples: samples,
            dtype: dtype, data: data, min: lo, max: hi, bytes: buf.byteLength, values: null, info: null};
  }
  function fetchFrame(url) {
    stats.requests++;
    return fetch(url, {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.arrayBuffer().then(function (buf) { stats.bytes += buf.byteLength; return makeFrame(buf, r.headers); });
    });
  }
  function pump() {
    while (active < MAX_PARALLEL && queue.length) {
      var job = queue.shift();
      if (cache.has(job.url)) { job.resolve(cache.get(job.url)); continue; }
      active++;
      (function (job) {
        fetchFrame(job.url).then(function (f) { cachePut(job.url, f); job.resolve(f); }, job.reject)
          .then(function () { active--; inflight.delete(job.url); pump(); });
      })(job);
    }
  }
  // urgent: the frame on screen, ahead of any prefetch
  function load(url, urgent) {
    var hit = cacheGet(url);
    if (hit) { stats.hits++; return Promise.resolve(hit); }
    var existing = inflight.get(url);
    if (existing) {
      if (urgent) { existing.job.urgent = true; var at = queue.indexOf(existing.job); if (at > 0) { queue.splice(at, 1); queue.unshift(existing.job); } }
      return existing.promise;
    }
    var job = {url: url, urgent: !!urgent};
    var promise = new Promise(function (res, rej) { job.resolve = res; job.reject = rej; });
    promise.catch(function () { inflight.delete(url); });
    inflight.set(url, {job: job, promise: promise});
    if (urgent) queue.unshift(job); else queue.push(job);
    pump();
    return promise;
  }
  function prefetch(series, index, dir) {
    // Drop prefetches not yet started, then ask for the series ahead of the scroll, then behind, as far as the cache allows.
    queue = queue.filter(function (j) { if (j.urgent) return true; inflight.delete(j.url); return false; });
    var n = series.frames.length, per = series.frames[0].rows * series.frames[0].columns * 2 * (series.frames[0].samples_per_pixel || 1);
    var room = Math.max(8, Math.floor(cacheLimit * 0.8 / Math.max(1, per)));
    var order = [];
    for (var d = 1; d < n && order.length < room; d++) {
      var a = index + d * dir, b = index - d * dir;
      if (a >= 0 && a < n) order.push(a);
      if (d <= 4 && b >= 0 && b < n) order.push(b);
    }
    for (d = 5; d < n && order.length < room; d++) { b = index - d * dir; if (b >= 0 && b < n) order.push(b); }
    order.forEach(function (i) { load(series.frames[i].pixels_url, false).catch(function () {}); });
  }

  // ------------------------------------------------------------------ renderers
  function linearWindow(c, w) { var lo = c - 0.5 - (w - 1) / 2, hi = c - 0.5 + (w - 1) / 2; return [lo, Math.max(hi, lo + 1e-3)]; }
  function Canvas2D(canvas) {
    var ctx = canvas.getContext("2d"), image = null, lutKey = "", lut = null;
    this.name = "2d";
    this.draw = function (frame, info, win, invert) {
      if (canvas.width !== frame.columns || canvas.height !== frame.rows) { canvas.width = frame.columns; canvas.height = frame.rows; image = null; }
      if (!image) image = ctx.createImageData(frame.columns, frame.rows);
      var out = new Uint32Array(image.data.buffer), data = frame.data, n = frame.rows * frame.columns, i;
      if (frame.samples === 3) {
        var px = image.data, x = invert ? 255 : 0;
        for (i = 0; i < n; i++) { px[4 * i] = x ^ data[3 * i]; px[4 * i + 1] = x ^ data[3 * i + 1]; px[4 * i + 2] = x ^ data[3 * i + 2]; px[4 * i + 3] = 255; }
      } else {
        var offset = frame.dtype === "int16" ? 32768 : 0, size = frame.dtype === "uint8" ? 256 : 65536;
        var slope = info.rescale_slope, icpt = info.rescale_intercept, key = [frame.dtype, slope, icpt, win.center, win.width, invert].join();
        if (key !== lutKey) {
          lut = new Uint32Array(size);
          var lw = linearWindow(win.center, win.width), lo = lw[0], span = lw[1] - lw[0];
          for (var s = 0; s < size; s++) {
            var g = ((s - offset) * slope + icpt - lo) / span;
            var v = g <= 0 ? 0 : g >= 1 ? 255 : Math.round(g * 255);
            if (invert) v = 255 - v;
            lut[s] = 0xff000000 | (v << 16) | (v << 8) | v;
          }
          lutKey = key;
        }
        if (offset) { for (i = 0; i < n; i++) out[i] = lut[data[i] + offset]; } else { for (i = 0; i < n; i++) out[i] = lut[data[i]]; }
      }
      ctx.putImageData(image, 0, 0);
    };
  }
  function WebGL(canvas) {
    var gl = canvas.getContext("webgl2", {preserveDrawingBuffer: true, antialias: false, premultipliedAlpha: false});
    if (!gl) throw new Error("no webgl2");
    function shader(type, src) {
      var s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      return s;
    }
    var prog = gl.createProgram();
    gl.attachShader(prog, shader(gl.VERTEX_SHADER, "#version 300 es\nin vec2 p; out vec2 uv; void main() { uv = vec2((p.x + 1.0) * 0.5, (1.0 - p.y) * 0.5); gl_Position = vec4(p, 0.0, 1.0); }"));
    gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, "#version 300 es\nprecision highp float; uniform highp sampler2D t; uniform float lo; uniform float span; uniform int rgb; uniform int inv; in vec2 uv; out vec4 o;\n" +
      "void main() { vec4 s = texture(t, uv); vec3 c = rgb == 1 ? s.rgb : vec3(clamp((s.r - lo) / span, 0.0, 1.0)); if (inv == 1) c = 1.0 - c; o = vec4(c, 1.0); }"));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    gl.useProgram(prog);
    var buf = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    var loc = gl.getAttribLocation(prog, "p"); gl.enableVertexAttribArray(loc); gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    var tex = gl.createTexture(), uploaded = null, u = {}, buffer = null;
    // The float values for the upload go through one reused buffer: the cache keeps only the stored values.
    function scratch(frame) { var n = frame.rows * frame.columns; if (!buffer || buffer.length !== n) buffer = new Float32Array(n); return buffer; }
    ["lo", "span", "rgb", "inv"].forEach(function (k) { u[k] = gl.getUniformLocation(prog, k); });
    this.name = "webgl";
    this.draw = function (frame, info, win, invert) {
      if (canvas.width !== frame.columns || canvas.height !== frame.rows) { canvas.width = frame.columns; canvas.height = frame.rows; }
      if (uploaded !== frame) {
        gl.bindTexture(gl.TEXTURE_2D, tex);
        gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
        [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER].forEach(function (p) { gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST); });
        [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T].forEach(function (p) { gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE); });
        if (frame.samples === 3) gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB8, frame.columns, frame.rows, 0, gl.RGB, gl.UNSIGNED_BYTE, frame.data);
        else gl.texImage2D(gl.TEXTURE_2D, 0, gl.R32F, frame.columns, frame.rows, 0, gl.RED, gl.FLOAT, frame.values || floatValues(frame, info, scratch(frame)));
        uploaded = frame;
      }
      var lw = linearWindow(win.center, win.width);
      gl.viewport(0, 0, frame.columns, frame.rows);
      gl.uniform1f(u.lo, lw[0]); gl.uniform1f(u.span, lw[1] - lw[0]);
      gl.uniform1i(u.rgb, frame.samples === 3 ? 1 : 0); gl.uniform1i(u.inv, invert ? 1 : 0);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    };
  }
  function makeRenderer(canvas) {
    if (rendererChoice !== "2d") { try { return new WebGL(canvas); } catch (e) { /* the 2D canvas below */ } }
    return new Canvas2D(canvas);
  }
  function floatValues(frame, info, out) {
    var n = frame.data.length, data = frame.data, s = info.rescale_slope, b = info.rescale_intercept;
    for (var i = 0; i < n; i++) out[i] = data[i] * s + b;
    return out;
  }
  // Modality values (stored * slope + intercept) as float: a float slope does not fit the stored type.
  function modalityValues(frame, info) {
    if (frame.samples !== 1) return null;
    if (!frame.values) {
      var out = floatValues(frame, info, new Float32Array(frame.data.length));
      frame.values = out;
      if (cache.get(info.pixels_url) === frame) { frame.bytes += out.byteLength; cacheGrow(out.byteLength); }
    }
    return frame.values;
  }

  // ------------------------------------------------------------------ orientation markers
  function axisLabel(v) {
    // Patient axes: +x left, +y posterior, +z head (LPS). The label names where the vector points.
    var names = [["R", "L"], ["A", "P"], ["F", "H"]], out = "", order = [0, 1, 2].sort(function (a, b) { return Math.abs(v[b]) - Math.abs(v[a]); });
    order.forEach(function (k) { if (Math.abs(v[k]) > 0.25 && out.length < 2) out += names[k][v[k] > 0 ? 1 : 0]; });
    return out;
  }
  PV.axisLabel = axisLabel;

  // ------------------------------------------------------------------ viewports
  function Viewport(pane, number) {
    var vp = this;
    vp.number = number; vp.pane = pane;
    vp.el = pane.querySelector(".viewport");
    vp.imageCanvas = pane.querySelector(".image-canvas");
    vp.fallback = pane.querySelector(".fallback-image");
    vp.overlayCanvas = pane.querySelector(".overlay-canvas");
    vp.seriesSelect = pane.querySelector(".pane-series");
    vp.series = null; vp.index = 0; vp.dir = 1; vp.win = null; vp.fileWindow = true; vp.invert = false;
    vp.zoom = 1; vp.panX = 0; vp.panY = 0; vp.tool = "window"; vp.frame = null; vp.shownUrl = null;
    vp.renderer = makeRenderer(vp.imageCanvas);
    root.dataset.renderer = vp.renderer.name;
    var q = function (c) { return pane.querySelector(c); };
    vp.out = {series: q(".series-label"), slice: q(".slice-readout"), thickness: q(".thickness-readout"), zoom: q(".zoom-readout"),
              name: q(".patient-name"), pid: q(".patient-id"), date: q(".study-date"), desc: q(".series-description"),
              wl: q(".wl-overlay"), note: q(".renderer-note"), top: q(".orient-top"), bottom: q(".orient-bottom"),
              left: q(".orient-left"), right: q(".orient-right")};
    Object.defineProperty(vp, "window", {get: function () { return vp.win ? {center: vp.win.center, width: vp.win.width} : null; }});
    if (vp.seriesSelect) vp.seriesSelect.addEventListener("change", function () { vp.load(vp.seriesSelect.value); });
    bindPointer(vp); bindKeys(vp);
    vp.el.addEventListener("wheel", function (e) {
      e.preventDefault();
      if (e.ctrlKey) { vp.zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15); return; }
      vp.show(vp.index + (e.deltaY > 0 ? 1 : -1));
    }, {passive: false});
    if (window.ResizeObserver) new ResizeObserver(function () { vp.place(); }).observe(vp.el);
  }
  var P = Viewport.prototype;
  P.info = function () { return this.series ? this.series.frames[this.index] : null; };
  P.current = function () {
    var f = this.info(), fr = this.frame;
    if (!f) return null;
    return {instanceId: f.instance_id, sopInstanceUid: f.sop_instance_uid, frame: f.frame, index: this.index, rows: f.rows,
            columns: f.columns, pixelSpacing: f.pixel_spacing, spacingSource: f.spacing_source, rescaleSlope: f.rescale_slope,
            rescaleIntercept: f.rescale_intercept, modality: this.series.modality,
            values: fr && fr.info === f ? modalityValues(fr, f) : null};
  };
  P.load = function (id, thenIndex) {
    var vp = this;
    return fetch(caseUrl + "/series/" + id + ".json", {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        vp.series = data; vp.frame = null; vp.shownUrl = null;
        if (vp.seriesSelect) vp.seriesSelect.value = String(data.id);
        vp.resetView(false);
        vp.index = thenIndex !== undefined ? thenIndex : Math.floor(data.count / 2);
        // A series opened beside another starts where the other is (when the scroll is synchronised), never moves it.
        var other = PV.viewports.filter(function (o) { return o !== vp && o.series; })[0];
        if (thenIndex === undefined && other && compareOn && syncScroll && syncScroll.checked) {
          var match = samePlace(other, vp);
          if (match !== null) vp.index = match;
        }
        vp.show(vp.index, true);
        if (vp === activeVp) ui.seriesChanged();
        root.dispatchEvent(new CustomEvent("viewer:series", {detail: data}));
        return data;
      });
  };
  P.defaultWindow = function (frame, info) {
    var fw = this.series.file_window;
    if (fw && fw.width) return {center: fw.center, width: fw.width};
    if (info.window_width) return {center: info.window_center, width: info.window_width};
    if (frame.samples === 3) return {center: 127.5, width: 256};
    var a = frame.min * info.rescale_slope + info.rescale_intercept, b = frame.max * info.rescale_slope + info.rescale_intercept;
    return {center: (a + b) / 2, width: Math.max(1, Math.abs(b - a))};
  };
  P.show = function (i, fromSync) {
    var vp = this;
    if (!vp.series || !vp.series.count) return;
    var before = vp.index;
    i = Math.max(0, Math.min(vp.series.count - 1, i));
    if (i !== before) vp.dir = i > before ? 1 : -1;
    vp.index = i;
    var info = vp.info(), url = info.pixels_url;
    pinned.clear(); PV.viewports.forEach(function (o) { var f = o.info(); if (f) pinned.add(f.pixels_url); });
    load(url, true).then(function (frame) {
      if (vp.info() !== info) return;
      var changed = vp.shownUrl !== url;
      frame.info = info; vp.frame = frame; vp.shownUrl = url; vp.failed = false;
      if (!vp.win) { vp.win = vp.defaultWindow(frame, info); vp.fileWindow = true; if (vp === activeVp) ui.windowChanged(); }
      vp.render();
      if (changed) emit("frame", vp);
    }, function () {
      // Values the browser cannot take (or a failed request): the server-rendered slice, windowed there.
      if (vp.info() !== info) return;
      vp.failed = true; vp.frame = null; vp.shownUrl = null;
      if (!vp.win) { var fw = vp.series.file_window; vp.win = fw && fw.width ? {center: fw.center, width: fw.width} : vp.series.modality === "CT" ? {center: 40, width: 400} : {center: 500, width: 1000}; vp.fileWindow = true; }
      vp.render();
      emit("frame", vp);
    });
    prefetch(vp.series, i, vp.dir);
    vp.readouts();
    if (vp === activeVp) ui.indexChanged();
    if (!fromSync && i !== before) syncFrom(vp, before);
  };
  P.goTo = function (uid, frameNo) {
    var fs = this.series ? this.series.frames : [];
    for (var i = 0; i < fs.length; i++) { if (fs[i].sop_instance_uid === uid && fs[i].frame === (frameNo || 0)) { this.show(i); return true; } }
    return false;
  };
  P.setWindow = function (c, w, fromFile) {
    if (!isFinite(c) || !isFinite(w)) return;
    this.win = {center: c, width: Math.max(1, w)}; this.fileWindow = !!fromFile;
    this.render();
    if (!this._linking && linkWindow && linkWindow.checked && compareOn) {
      var me = this;
      PV.viewports.forEach(function (o) { if (o !== me && o.series) { o._linking = true; o.setWindow(c, w, fromFile); o._linking = false; } });
    }
    if (this === activeVp) ui.windowChanged();
  };
  P.resetView = function (redraw) {
    this.zoom = 1; this.panX = 0; this.panY = 0; this.invert = false;
    this.win = this.frame && this.info() === this.frame.info ? this.defaultWindow(this.frame, this.info()) : null;
    this.fileWindow = true;
    if (redraw) this.render(); else this.place();
    if (this === activeVp) ui.windowChanged();
  };
  P.zoomBy = function (f) { this.zoom = Math.max(0.25, Math.min(16, this.zoom * f)); this.place(); this.readouts(); };
  // Layout: where the image sits in the viewport (CSS px), with the pixel aspect from the spacing.
  P.geometry = function () {
    var f = this.info(), W = this.el.clientWidth, H = this.el.clientHeight;
    if (!f) return null;
    var sp = f.pixel_spacing, ax = 1, ay = 1;
    if (sp && sp[0] > 0 && sp[1] > 0) { var m = Math.min(sp[0], sp[1]); ay = sp[0] / m; ax = sp[1] / m; }
    var fit = Math.min(W / (f.columns * ax), H / (f.rows * ay)) * this.zoom;
    var sx = fit * ax, sy = fit * ay;
    return {sx: sx, sy: sy, x0: W / 2 + this.panX - f.columns * sx / 2, y0: H / 2 + this.panY - f.rows * sy / 2, W: W, H: H};
  };
  P.imageToCanvas = function (x, y) { var g = this.geometry(); return g ? {x: g.x0 + x * g.sx, y: g.y0 + y * g.sy} : null; };
  P.canvasToImage = function (x, y) { var g = this.geometry(); return g ? {x: (x - g.x0) / g.sx, y: (y - g.y0) / g.sy} : null; };
  P.place = function () {
    var g = this.geometry(), c = this.imageCanvas, f = this.info();
    if (!g) return;
    [c, this.fallback].forEach(function (el) {
      el.style.width = f.columns + "px"; el.style.height = f.rows + "px";
      el.style.transform = "translate(" + g.x0 + "px," + g.y0 + "px) scale(" + g.sx + "," + g.sy + ")";
    });
    this.drawOverlay(g);
  };
  P.render = function () {
    var f = this.frame, fallback = this.failed && !f && this.series;
    this.fallback.hidden = !fallback; this.imageCanvas.hidden = !!fallback;
    if (fallback) {
      var q = this.win && !this.fileWindow ? "?wc=" + Math.round(this.win.center) + "&ww=" + Math.max(1, Math.round(this.win.width)) : "";
      var src = this.series.render_base + this.index + ".png" + q;
      if (this.fallback.getAttribute("src") !== src) this.fallback.src = src;
      this.imageCanvas.dataset.index = String(this.index);
      this.imageCanvas.dataset.loaded = "server";
    } else if (f && f.info === this.info() && this.win) {
      var invert = this.invert !== (f.info.photometric === "MONOCHROME1");
      this.renderer.draw(f, f.info, this.win, invert);
      this.imageCanvas.dataset.index = String(this.index);
      this.imageCanvas.dataset.window = Math.round(this.win.center) + "," + Math.round(this.win.width);
      this.imageCanvas.dataset.invert = this.invert ? "1" : "0";
      this.imageCanvas.dataset.loaded = "1";
    }
    this.place();
    this.readouts();
  };
  P.drawOverlay = function (g) {
    var oc = this.overlayCanvas, dpr = window.devicePixelRatio || 1;
    var w = Math.round(g.W * dpr), h = Math.round(g.H * dpr);
    if (oc.width !== w || oc.height !== h) { oc.width = w; oc.height = h; }
    var ctx = oc.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.clearRect(0, 0, w, h); ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    emit("render", this, ctx);
  };
  P.readouts = function () {
    var s = this.series, f = this.info(), o = this.out;
    if (!s || !f) return;
    o.series.textContent = s.label;
    o.slice.textContent = "Slice " + (this.index + 1) + " / " + s.count +
      (f.slice_position !== null && f.slice_position !== undefined ? " · position " + f.slice_position.toFixed(1) + " mm" : "") +
      (s.slices[this.index] && s.slices[this.index].instance_number !== null ? " · image " + s.slices[this.index].instance_number : "") +
      (f.frame ? " · frame " + (f.frame + 1) : "");
    o.thickness.textContent = f.slice_thickness ? "Thickness " + f.slice_thickness.toFixed(1) + " mm" : "";
    o.zoom.textContent = this.zoom !== 1 ? "Zoom " + this.zoom.toFixed(1) + "×" : "";
    var p = s.patient || {};
    o.name.textContent = p.name || ""; o.pid.textContent = p.id ? "ID " + p.id : ""; o.date.textContent = p.study_date || "";
    o.desc.textContent = p.series_description || "";
    o.wl.textContent = this.win ? wlText(this.win) + (this.invert ? " · inverted" : "") : "";
    o.note.textContent = this.failed ? "Windowed on the server: this image's values cannot be sent to the browser." : "";
    var ori = f.image_orientation, mk = {top: "", bottom: "", left: "", right: ""};
    if (ori) {
      var row = ori.slice(0, 3), col = ori.slice(3, 6), neg = function (v) { return v.map(function (x) { return -x; }); };
      mk = {right: axisLabel(row), left: axisLabel(neg(row)), bottom: axisLabel(col), top: axisLabel(neg(col))};
    }
    ["top", "bottom", "left", "right"].forEach(function (k) { o[k].textContent = mk[k]; });
  };
  P.setTool = function (name) {
    this.tool = name;
    this.el.classList.toggle("panning", name === "pan");
    this.el.classList.toggle("tool-active", !!tools[name]);
    if (this === activeVp) ui.toolChanged(name);
  };
  function wlText(win) { return "W " + Math.round(win.width) + " / L " + Math.round(win.center); }

  // ------------------------------------------------------------------ comparison: synchronised scrolling
  var compareOn = false;
  // The index in `o` nearest to where `vp` is, when both series share a frame of reference and know their positions.
  function samePlace(vp, o) {
    var a = vp.info();
    var ok = a && vp.series.frame_of_reference_uid && vp.series.frame_of_reference_uid === o.series.frame_of_reference_uid &&
      a.slice_position !== null && o.series.frames.every(function (f) { return f.slice_position !== null; });
    if (!ok) return null;
    var best = 0, dist = Infinity;
    o.series.frames.forEach(function (f, i) { var d = Math.abs(f.slice_position - a.slice_position); if (d < dist) { dist = d; best = i; } });
    return best;
  }
  function syncFrom(vp, before) {
    if (!compareOn || !syncScroll || !syncScroll.checked) return;
    PV.viewports.forEach(function (o) {
      if (o === vp || !o.series || !o.series.count) return;
      var match = samePlace(vp, o);
      o.show(match !== null ? match : o.index + (vp.index - before), true);
    });
  }

  // ------------------------------------------------------------------ pointer: mouse, pen and touch
  function local(vp, e) { var r = vp.el.getBoundingClientRect(); return {x: e.clientX - r.left, y: e.clientY - r.top}; }
  function bindPointer(vp) {
    var el = vp.el, drag = null, touches = new Map(), gesture = null, lastTap = null;
    el.addEventListener("pointerdown", function (e) {
      setActive(vp);
      if (e.pointerType === "touch") { touchDown(e); return; }
      if (e.button !== 0) return;
      e.preventDefault(); el.focus();
      try { el.setPointerCapture(e.pointerId); } catch (err) { /* synthetic events */ }
      var t = tools[vp.tool], p = local(vp, e);
      if (t) { drag = {tool: t}; if (t.pointerDown) t.pointerDown(vp, vp.canvasToImage(p.x, p.y), e); vp.place(); return; }
      drag = {mode: (vp.tool === "pan" || e.shiftKey) ? "pan" : "window", x: e.clientX, y: e.clientY, panX: vp.panX, panY: vp.panY, moved: false};
    });
    el.addEventListener("pointermove", function (e) {
      if (e.pointerType === "touch") { touchMove(e); return; }
      var t = tools[vp.tool];
      if (t && (!drag || drag.tool)) { if (t.pointerMove) { var p = local(vp, e); t.pointerMove(vp, vp.canvasToImage(p.x, p.y), e); vp.place(); } return; }
      if (!drag || drag.tool) return;
      var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (drag.mode === "pan") { vp.panX = drag.panX + dx; vp.panY = drag.panY + dy; vp.place(); return; }
      if (!drag.moved) {  // a click without movement must not leave the file's window
        if (Math.abs(dx) + Math.abs(dy) < 2 || !vp.win) return;
        drag.moved = true; drag.win = {center: vp.win.center, width: vp.win.width};
      }
      dragWindow(vp, drag.win, dx, dy);
    });
    function end(e) {
      if (e.pointerType === "touch") { touchUp(e); return; }
      if (drag && drag.tool && drag.tool.pointerUp) { var p = local(vp, e); drag.tool.pointerUp(vp, vp.canvasToImage(p.x, p.y), e); vp.place(); }
      drag = null;
    }
    el.addEventListener("pointerup", end);
    el.addEventListener("pointercancel", end);
    // Touch: one finger scrolls, a pinch zooms, two fingers dragged together set the window, a double tap resets.
    function touchDown(e) {
      e.preventDefault();
      touches.set(e.pointerId, {x: e.clientX, y: e.clientY});
      if (touches.size === 1) {
        var now = Date.now();
        if (lastTap && now - lastTap.t < 350 && Math.abs(e.clientX - lastTap.x) + Math.abs(e.clientY - lastTap.y) < 40) {
          vp.resetView(true); lastTap = null; gesture = null; return;
        }
        lastTap = {t: now, x: e.clientX, y: e.clientY};
        gesture = {kind: "scroll", y: e.clientY, index: vp.index};
      } else if (touches.size === 2) {
        var pts = Array.from(touches.values());
        gesture = {kind: "two", dist: Math.hypot(pts[0].x - pts[1].x, pts[0].y - pts[1].y), mx: (pts[0].x + pts[1].x) / 2,
                   my: (pts[0].y + pts[1].y) / 2, zoom: vp.zoom, win: vp.win ? {center: vp.win.center, width: vp.win.width} : null};
        lastTap = null;
      }
    }
    function touchMove(e) {
      if (!touches.has(e.pointerId) || !gesture) return;
      e.preventDefault();
      touches.set(e.pointerId, {x: e.clientX, y: e.clientY});
      if (gesture.kind === "scroll" && touches.size === 1) {
        var dy = e.clientY - gesture.y;
        if (Math.abs(dy) > 8) lastTap = null;
        var target = gesture.index + Math.trunc(dy / 12);
        if (target !== vp.index) vp.show(target);
      } else if (gesture.kind === "two" && touches.size === 2 && !gesture.frame) {
        // Once per animation frame, when both fingers have reported; the gesture keeps the kind it started as.
        gesture.frame = requestAnimationFrame(function () { if (gesture && gesture.kind === "two") { gesture.frame = 0; twoFingers(); } });
      }
    }
    function twoFingers() {
      if (touches.size !== 2) return;
      {
        var pts = Array.from(touches.values());
        var dist = Math.hypot(pts[0].x - pts[1].x, pts[0].y - pts[1].y), mx = (pts[0].x + pts[1].x) / 2, my = (pts[0].y + pts[1].y) / 2;
        var ratio = dist / Math.max(1, gesture.dist), spread = Math.abs(dist - gesture.dist), moved = Math.abs(mx - gesture.mx) + Math.abs(my - gesture.my);
        if (!gesture.mode && Math.max(spread, moved) > 10) gesture.mode = spread > moved ? "pinch" : "window";
        if (gesture.mode === "pinch") { vp.zoom = Math.max(0.25, Math.min(16, gesture.zoom * ratio)); vp.place(); vp.readouts(); }
        if (gesture.mode === "window" && gesture.win) dragWindow(vp, gesture.win, mx - gesture.mx, my - gesture.my);
      }
    }
    function touchUp(e) {
      touches.delete(e.pointerId);
      if (touches.size === 0) gesture = null;
      else if (touches.size === 1 && gesture && gesture.kind === "two") gesture = null;
    }
  }
  // About one grey level per pixel for a 256-wide window; faster for wide windows.
  function dragWindow(vp, start, dx, dy) {
    var scale = Math.max(1, start.width / 256);
    vp.setWindow(start.center + dy * scale, Math.max(1, start.width + dx * scale * 2), false);
  }

  // ------------------------------------------------------------------ keyboard
  var HELP = [["Wheel, ↑ ↓ ← →", "Next / previous slice"], ["Page Up / Page Down", "10 slices"], ["Home / End", "First / last slice"],
              ["Drag", "Window (left/right width, up/down level)"], ["Shift+drag, or M then drag", "Pan"], ["W", "Window tool"],
              ["Ctrl+wheel, + / −", "Zoom"], ["1 – 6", "Presets: soft tissue, lung, bone, brain, liver, mediastinum"],
              ["I", "Invert"], ["O", "Overlay on / off"], ["C", "Cine on / off (speed: fps box)"], ["R", "Reset zoom, pan and window"],
              ["?", "This list"], ["Esc", "Close this list"],
              ["One finger up / down", "Scroll slices (touch)"], ["Pinch", "Zoom (touch)"], ["Two fingers drag", "Window (touch)"],
              ["Double tap", "Reset (touch)"]];
  function bindKeys(vp) {
    vp.el.addEventListener("keydown", function (e) {
      var k = e.key, t = tools[vp.tool];
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (t && t.keyDown && t.keyDown(vp, e) === true) { e.preventDefault(); return; }
      if (e.defaultPrevented) return;
      var n = vp.series ? vp.series.count : 0;
      if (k === "ArrowDown" || k === "ArrowRight" || k === "PageDown") { e.preventDefault(); vp.show(vp.index + (k === "PageDown" ? 10 : 1)); }
      else if (k === "ArrowUp" || k === "ArrowLeft" || k === "PageUp") { e.preventDefault(); vp.show(vp.index - (k === "PageUp" ? 10 : 1)); }
      else if (k === "Home") { e.preventDefault(); vp.show(0); }
      else if (k === "End") { e.preventDefault(); vp.show(n - 1); }
      else if (k === "+" || k === "=") vp.zoomBy(1.25);
      else if (k === "-") vp.zoomBy(0.8);
      else if (k === "r" || k === "R") { vp.resetView(true); }
      else if (k === "i" || k === "I") ui.invert();
      else if (k === "o" || k === "O") ui.overlay();
      else if (k === "c" || k === "C") ui.cine();
      else if (k === "?") ui.help();
      else if (k === "Escape") ui.help(false);
      else if (k === "w" || k === "W") vp.setTool("window");
      else if (k === "m" || k === "M") vp.setTool("pan");
      else if (/^[1-6]$/.test(k)) ui.preset(parseInt(k, 10));
      else {
        var name = toolOrder.filter(function (nm) { return (tools[nm].key || "").toLowerCase() === k.toLowerCase(); })[0];
        if (name) { e.preventDefault(); vp.setTool(vp.tool === name ? "window" : name); }
      }
    });
  }

  // ------------------------------------------------------------------ the shared controls (they act on the active viewport)
  var activeVp = null;
  function setActive(vp) {
    if (activeVp === vp) return;
    activeVp = vp;
    PV.viewports.forEach(function (o) { o.pane.classList.toggle("active-pane", o === vp); });
    if (ui && vp.series) { ui.seriesChanged(); }
  }
  PV.active = function () { return activeVp; };
  var cineTimer = null, form = $("#key-image-form"), keyStatus = $("#key-status");
  ui = {
    toolButton: function (name, tool) {
      var group = $("#tool-group");
      if (group.querySelector('[data-tool="' + name + '"]')) return;
      var b = document.createElement("button");
      b.type = "button"; b.className = "button small tool"; b.dataset.tool = name; b.setAttribute("aria-pressed", "false");
      b.textContent = tool.label || name; b.title = (tool.label || name) + (tool.key ? " (" + tool.key.toUpperCase() + ")" : "");
      group.appendChild(b); bindToolButton(b);
      if (tool.key) addHelp(tool.key.toUpperCase(), tool.label || name);
    },
    toolChanged: function (name) {
      root.querySelectorAll(".tool").forEach(function (o) { var on = o.dataset.tool === name; o.classList.toggle("active", on); o.setAttribute("aria-pressed", on ? "true" : "false"); });
    },
    seriesChanged: function () {
      var s = activeVp.series;
      slider.max = Math.max(0, s.count - 1);
      preset.querySelectorAll("option[data-ct-only]").forEach(function (o) { o.hidden = s.modality !== "CT"; });
      root.querySelectorAll(".series-pick").forEach(function (b) { b.classList.toggle("current", b.dataset.seriesId === String(s.id)); });
      renderKeyImages(); ui.indexChanged(); ui.windowChanged(); ui.toolChanged(activeVp.tool);
    },
    indexChanged: function () { slider.value = activeVp.index; if (header.open) loadHeader(); },
    windowChanged: function () {
      var vp = activeVp;
      wlReadout.textContent = vp.win ? wlText(vp.win) : "";
      if (vp.fileWindow) preset.value = "";
      else if (preset.value) { var p = preset.value.split(","); if (+p[0] !== Math.round(vp.win.center) || +p[1] !== Math.round(vp.win.width)) preset.value = ""; }
      setPressed("invert", vp.invert);
    },
    invert: function () { activeVp.invert = !activeVp.invert; activeVp.render(); setPressed("invert", activeVp.invert); },
    overlay: function () { var off = root.classList.toggle("overlay-off"); setPressed("overlay", !off); },
    cine: function () {
      if (cineTimer) { clearInterval(cineTimer); cineTimer = null; setPressed("cine", false); return; }
      var fps = Math.max(1, Math.min(60, parseFloat(fpsInput.value) || 10));
      cineTimer = setInterval(function () { var vp = activeVp; vp.show(vp.index + 1 >= vp.series.count ? 0 : vp.index + 1); }, 1000 / fps);
      setPressed("cine", true);
    },
    preset: function (n) {
      var opts = Array.prototype.filter.call(preset.options, function (o) { return o.value && !o.hidden; });
      if (!opts[n - 1]) return;
      preset.value = opts[n - 1].value; applyPreset();
    },
    help: function (show) {
      var panel = $("#viewer-help"), open = show === undefined ? panel.hidden : show;
      panel.hidden = !open;
      $("[data-action=help]").setAttribute("aria-expanded", open ? "true" : "false");
    }
  };
  function setPressed(action, on) { var b = $("[data-action=" + action + "]"); if (b) b.setAttribute("aria-pressed", on ? "true" : "false"); }
  function addHelp(keys, what) {
    var dl = $("#help-list"), dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = keys; dd.textContent = what; dl.appendChild(dt); dl.appendChild(dd);
  }
  HELP.forEach(function (h) { addHelp(h[0], h[1]); });
  function applyPreset() {
    var vp = activeVp;
    if (!preset.value) { vp.win = vp.frame ? vp.defaultWindow(vp.frame, vp.info()) : null; vp.fileWindow = true; if (vp.win) vp.setWindow(vp.win.center, vp.win.width, true); }
    else { var p = preset.value.split(","); vp.setWindow(parseFloat(p[0]), parseFloat(p[1]), false); }
  }
  preset.addEventListener("change", function () { applyPreset(); activeVp.el.focus(); });
  function bindToolButton(b) {
    b.addEventListener("click", function () { activeVp.setTool(b.dataset.tool); activeVp.el.focus(); });
  }
  root.querySelectorAll(".tool").forEach(bindToolButton);
  var actions = {
    "zoom-in": function () { activeVp.zoomBy(1.25); }, "zoom-out": function () { activeVp.zoomBy(0.8); },
    reset: function () { activeVp.resetView(true); }, invert: function () { ui.invert(); }, overlay: function () { ui.overlay(); },
    cine: function () { ui.cine(); }, help: function () { ui.help(); }, "help-close": function () { ui.help(false); },
    compare: function () { toggleCompare(); }
  };
  root.querySelectorAll("[data-action]").forEach(function (b) {
    b.addEventListener("click", function () {
      actions[b.dataset.action]();
      if (b.dataset.action !== "help" && b.dataset.action !== "help-close") activeVp.el.focus();
    });
  });
  fpsInput.addEventListener("change", function () { if (cineTimer) { ui.cine(); ui.cine(); } });
  slider.addEventListener("input", function () { activeVp.show(parseInt(slider.value, 10)); });
  root.querySelectorAll(".series-pick").forEach(function (b) {
    b.addEventListener("click", function () { activeVp.load(b.dataset.seriesId); });
  });

  function toggleCompare() {
    compareOn = !compareOn;
    var box = $("#viewports");
    box.classList.toggle("compare", compareOn);
    setPressed("compare", compareOn);
    $(".compare-options").hidden = !compareOn;
    root.querySelectorAll(".pane-head").forEach(function (h) { h.hidden = !compareOn; });
    if (compareOn && PV.viewports.length < 2) {
      var first = PV.viewports[0], pane = first.pane.cloneNode(true);
      pane.dataset.pane = "1";
      pane.querySelectorAll("[id]").forEach(function (el) { el.removeAttribute("id"); });
      pane.querySelectorAll(".viewport-overlay span, .orient").forEach(function (el) { el.textContent = ""; });
      var canvas = pane.querySelector(".image-canvas");
      ["index", "window", "invert", "loaded"].forEach(function (k) { delete canvas.dataset[k]; });
      pane.querySelector(".image-canvas").setAttribute("aria-label", "Slice image, second view");
      box.appendChild(pane);
      var second = new Viewport(pane, 1);
      PV.viewports.push(second);
      var other = Array.prototype.filter.call(first.seriesSelect.options, function (o) { return o.value !== String(first.series.id); })[0];
      second.load(other ? other.value : first.series.id);
    }
    PV.viewports.forEach(function (vp, i) { vp.pane.hidden = i > 0 && !compareOn; vp.place(); });
    if (!compareOn) setActive(PV.viewports[0]);
  }

  // ------------------------------------------------------------------ DICOM header panel
  function loadHeader() {
    var body = header.querySelector("tbody"), vp = activeVp;
    fetch(caseUrl + "/series/" + vp.series.id + "/slices/" + vp.index + "/header.json", {headers: {"Accept": "application/json"}, credentials: "same-origin"})
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

  // ------------------------------------------------------------------ key images
  function renderKeyImages() {
    var series = activeVp.series;
    keyList.textContent = "";
    (series.key_images || []).forEach(function (k) {
      var li = document.createElement("li");
      li.dataset.keyImageId = k.id;
      var go = document.createElement("button");
      go.type = "button"; go.className = "link";
      go.textContent = "Slice " + (k.slice_index + 1) + " · " + k.window_label + (k.caption ? " · " + k.caption : "");
      go.addEventListener("click", function () {
        var vp = activeVp;
        vp.show(k.slice_index);
        if (k.center !== null) { preset.value = ""; vp.setWindow(k.center, k.width, false); }
        vp.el.focus();
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
  function post(target, data) {
    var token = form ? form.querySelector("input[name=csrf_token]") : null;
    if (token && !data.has("csrf_token")) data.append("csrf_token", token.value);
    return fetch(target, {method: "POST", body: data, credentials: "same-origin",
                          headers: {"X-Requested-With": "fetch", "Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || "Not saved."); return j; }); })
      .catch(function (err) { if (keyStatus) keyStatus.textContent = err.message; throw err; });
  }
  PV.post = post;
  function mark() {
    var vp = activeVp, series = vp.series, data = new FormData();
    data.append("series_id", series.id);
    data.append("slice_index", vp.index);
    if (vp.win && !vp.fileWindow) { data.append("window_center", Math.round(vp.win.center)); data.append("window_width", Math.max(1, Math.round(vp.win.width))); }
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
  if (form) {
    $("#key-caption").addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); mark(); } });
    $("#mark-key").addEventListener("click", mark);
  }

  // ------------------------------------------------------------------ start
  var first = new Viewport(root.querySelector(".viewport-pane"), 0);
  PV.viewports.push(first);
  setActive(first);
  toolOrder.forEach(function (name) { ui.toolButton(name, tools[name]); });
  first.load(root.dataset.initialSeries).then(function () { if (root.dataset.autofocus) first.el.focus(); });
})();
