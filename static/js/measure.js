// Measuring tools for the scan viewer (loaded after viewer.js): length, bidirectional (RECIST), ellipse ROI, probe,
// arrow with text. Drawn on the viewport's overlay canvas through window.PortalViewer; saved to the server when the
// pointer is released (or Enter is pressed). The server computes every value from the original pixels; the numbers
// drawn while dragging are a preview only, replaced by the server's as soon as it answers.
// Keyboard, with a measuring tool active: Enter makes a measurement at the centre (or saves the selected one),
// N selects the next measurement on this image, H the next handle, arrow keys move the handle (Shift: 10 px),
// Delete removes the selected measurement, Esc lets go of it.
(function () {
  "use strict";
  var COLOUR = "#ffd700", SELECTED = "#00e5ff", HANDLE = 6;
  var KINDS = {
    length: {label: "Length", key: "l", points: 2},
    bidirectional: {label: "RECIST", key: "b", points: 4},
    ellipse: {label: "ROI", key: "e", points: 2},
    probe: {label: "Probe", key: "p", points: 1},
    arrow: {label: "Arrow", key: "a", points: 2}
  };

  function start() {
    var PV = window.PortalViewer, root = document.querySelector(".dicom-viewer");
    if (!PV || !root || !root.dataset.measurementsUrl) return;
    var listUrl = root.dataset.measurementsUrl, createUrl = null, canEdit = false;
    var items = [], draft = null, selected = null, handle = 0, dragging = null;
    PV.measurements = {items: function () { return items; }, pending: 0};

    // ---------------------------------------------------------------- server
    function token() {
      var input = root.querySelector("input[name=csrf_token]");
      return root.dataset.csrf || (input ? input.value : "");
    }
    function send(method, url, body) {
      PV.measurements.pending++;
      return fetch(url, {method: method, credentials: "same-origin", body: body ? JSON.stringify(body) : undefined,
                         headers: {"Content-Type": "application/json", "Accept": "application/json",
                                   "X-Requested-With": "fetch", "X-CSRFToken": token()}})
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (j) {
            if (!r.ok) throw new Error(j.error || ("The server answered " + r.status + "."));
            return j;
          });
        })
        .finally(function () { PV.measurements.pending--; });
    }
    function problem(err) { status.textContent = err.message || String(err); status.classList.add("error"); redraw(); }
    function saved(m) {
      var at = items.findIndex(function (o) { return o.id === m.id; });
      if (at >= 0) items[at] = m; else items.push(m);
      status.textContent = ""; status.classList.remove("error");
      renderList(); redraw();
      return m;
    }
    function load() {
      return fetch(listUrl, {credentials: "same-origin", headers: {"Accept": "application/json", "X-Requested-With": "fetch"}})
        .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("The measurements could not be loaded.")); })
        .then(function (j) { items = j.measurements || []; canEdit = !!j.can_edit; createUrl = j.create_url; renderList(); redraw(); })
        .catch(problem);
    }
    function create(vp, kind, points) {
      var c = vp.current();
      var body = {sop_instance_uid: c.sopInstanceUid, frame: c.frame, kind: kind, points: points, label: ""};
      return send("POST", createUrl, body).then(function (j) { selected = j.measurement.id; handle = 0; return saved(j.measurement); }, problem);
    }
    function update(m, body) { return send("PATCH", m.url, body).then(function (j) { return saved(j.measurement); }, function (e) { load(); problem(e); }); }
    function remove(m) {
      return send("DELETE", m.url).then(function () {
        items = items.filter(function (o) { return o.id !== m.id; });
        if (selected === m.id) selected = null;
        renderList(); redraw();
      }, problem);
    }

    // ---------------------------------------------------------------- geometry (preview only)
    function spacing(vp) { var c = vp.current(); return c && c.pixelSpacing ? {x: c.pixelSpacing[1], y: c.pixelSpacing[0], cal: true} : {x: 1, y: 1, cal: false}; }
    function dist(vp, p, q) { var s = spacing(vp); return Math.hypot((q[0] - p[0]) * s.x, (q[1] - p[1]) * s.y); }
    function preview(vp, kind, pts) {
      var s = spacing(vp), unit = s.cal ? " mm" : " px";
      if (kind === "length" && pts.length === 2) return dist(vp, pts[0], pts[1]).toFixed(1) + unit;
      if (kind === "bidirectional" && pts.length === 4) return dist(vp, pts[0], pts[1]).toFixed(1) + " × " + dist(vp, pts[2], pts[3]).toFixed(1) + unit;
      if (kind === "ellipse" && pts.length === 2) return "area " + (Math.PI * Math.abs(pts[1][0] - pts[0][0]) / 2 * s.x * Math.abs(pts[1][1] - pts[0][1]) / 2 * s.y).toFixed(1) + (s.cal ? " mm²" : " px²");
      return "";
    }
    function clampPoint(vp, p) {
      var c = vp.current();
      return [Math.max(0, Math.min(c.columns, p.x !== undefined ? p.x : p[0])), Math.max(0, Math.min(c.rows, p.y !== undefined ? p.y : p[1]))];
    }
    function shortAxisFor(vp, a, b) {
      // A perpendicular through the middle of the long axis, half as long: the reviewer then drags its ends.
      var s = spacing(vp), ux = (b[0] - a[0]) * s.x, uy = (b[1] - a[1]) * s.y, n = Math.hypot(ux, uy) || 1;
      var vx = -uy / n, vy = ux / n, half = n / 4, mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2;
      return [clampPoint(vp, [mx - half * vx / s.x, my - half * vy / s.y]), clampPoint(vp, [mx + half * vx / s.x, my + half * vy / s.y])];
    }
    function onThisImage(vp, m) { var c = vp.current(); return c && m.sop_instance_uid === c.sopInstanceUid && m.frame === c.frame; }
    function here(vp) { return items.filter(function (m) { return onThisImage(vp, m); }); }
    function byId(id) { return items.filter(function (m) { return m.id === id; })[0] || null; }

    // ---------------------------------------------------------------- drawing
    function drawShape(vp, ctx, kind, pts, colour, text, handles) {
      var c = pts.map(function (p) { return vp.imageToCanvas(p[0], p[1]); });
      if (c.some(function (p) { return !p; })) return;
      ctx.save();
      ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 2; ctx.font = "13px sans-serif";
      ctx.shadowColor = "rgba(0,0,0,0.8)"; ctx.shadowBlur = 2;
      ctx.beginPath();
      if ((kind === "length" || kind === "arrow") && c.length >= 2) { ctx.moveTo(c[0].x, c[0].y); ctx.lineTo(c[1].x, c[1].y); }
      if (kind === "bidirectional" && c.length >= 2) {
        ctx.moveTo(c[0].x, c[0].y); ctx.lineTo(c[1].x, c[1].y);
        if (c.length === 4) { ctx.moveTo(c[2].x, c[2].y); ctx.lineTo(c[3].x, c[3].y); }
      }
      if (kind === "ellipse" && c.length === 2) {
        ctx.ellipse((c[0].x + c[1].x) / 2, (c[0].y + c[1].y) / 2, Math.abs(c[1].x - c[0].x) / 2 || 0.5, Math.abs(c[1].y - c[0].y) / 2 || 0.5, 0, 0, 2 * Math.PI);
      }
      if (kind === "probe") { ctx.moveTo(c[0].x - 6, c[0].y); ctx.lineTo(c[0].x + 6, c[0].y); ctx.moveTo(c[0].x, c[0].y - 6); ctx.lineTo(c[0].x, c[0].y + 6); }
      ctx.stroke();
      if (kind === "arrow" && c.length === 2) {
        var ang = Math.atan2(c[1].y - c[0].y, c[1].x - c[0].x);
        ctx.beginPath();
        [-0.45, 0.45].forEach(function (d) { ctx.moveTo(c[1].x, c[1].y); ctx.lineTo(c[1].x - 12 * Math.cos(ang + d), c[1].y - 12 * Math.sin(ang + d)); });
        ctx.stroke();
      }
      if (handles) c.forEach(function (p, i) { ctx.strokeRect(p.x - HANDLE / 2, p.y - HANDLE / 2, HANDLE, HANDLE); if (handles === i + 1) ctx.fillRect(p.x - HANDLE / 2, p.y - HANDLE / 2, HANDLE, HANDLE); });
      if (text) { var at = kind === "arrow" ? c[0] : c[c.length - 1]; ctx.fillText(text, at.x + 8, at.y - 8); }
      ctx.restore();
    }
    PV.on("render", function (vp, ctx) {
      here(vp).forEach(function (m) {
        var isSel = m.id === selected, shown = dragging && dragging.m === m ? dragging.points : m.points;
        var text = [m.label, m.kind === "arrow" ? "" : (dragging && dragging.m === m ? preview(vp, m.kind, shown) : m.display)].filter(Boolean).join(": ");
        drawShape(vp, ctx, m.kind, shown, isSel ? SELECTED : COLOUR, text, isSel && m.editable ? handle + 1 : 0);
      });
      if (draft && draft.vp === vp) drawShape(vp, ctx, draft.kind, draft.points, SELECTED, preview(vp, draft.kind, draft.points), 0);
      calibration(vp);
    });
    PV.on("frame", function () { selected = null; renderList(); });
    function redraw() { PV.viewports.forEach(function (vp) { if (vp.series) vp.render(); }); }

    // The "uncalibrated" flag: shown on the image while a measuring tool is active on a frame without pixel spacing.
    function calibration(vp) {
      var flag = vp.el.querySelector(".measure-uncalibrated");
      if (!flag) {
        flag = document.createElement("div"); flag.className = "measure-uncalibrated"; flag.setAttribute("role", "status");
        flag.textContent = "Uncalibrated: no pixel spacing in this image, measurements are in pixels";
        vp.el.appendChild(flag);
      }
      var c = vp.current();
      flag.hidden = !(c && !c.pixelSpacing && (KINDS[vp.tool] || here(vp).length));
    }

    // ---------------------------------------------------------------- pointer
    function nearHandle(vp, canvasPt) {
      var best = null;
      here(vp).forEach(function (m) {
        if (!m.editable) return;
        m.points.forEach(function (p, i) {
          var q = vp.imageToCanvas(p[0], p[1]);
          if (q && Math.abs(q.x - canvasPt.x) <= HANDLE + 2 && Math.abs(q.y - canvasPt.y) <= HANDLE + 2) best = {m: m, i: i};
        });
      });
      return best;
    }
    function tool(kind) {
      var spec = KINDS[kind];
      return {
        label: spec.label, key: spec.key,
        pointerDown: function (vp, p) {
          if (!p || !vp.current()) return;
          var hit = nearHandle(vp, vp.imageToCanvas(p.x, p.y));
          if (hit) { selected = hit.m.id; handle = hit.i; dragging = {m: hit.m, i: hit.i, points: hit.m.points.map(function (q) { return q.slice(); })}; renderList(); return; }
          if (!canEdit) { problem(new Error("Measurements can be made by a reviewer of this case until the review is signed.")); return; }
          var q = clampPoint(vp, p);
          draft = {vp: vp, kind: kind, points: kind === "probe" ? [q] : [q, q.slice()]};
        },
        pointerMove: function (vp, p) {
          if (!p) return;
          var q = clampPoint(vp, p);
          if (dragging) { dragging.points[dragging.i] = q; return; }
          if (draft && draft.vp === vp) { if (draft.kind === "probe") draft.points[0] = q; else draft.points[1] = q; }
        },
        pointerUp: function (vp, p) {
          if (dragging) {
            var d = dragging; dragging = null;
            if (p) d.points[d.i] = clampPoint(vp, p);
            d.m.points = d.points;
            update(d.m, {points: d.points});
            return;
          }
          if (!draft || draft.vp !== vp) return;
          var pts = draft.points; draft = null;
          if (p && kind !== "probe") pts[1] = clampPoint(vp, p);
          if (kind !== "probe" && dist(vp, pts[0], pts[1]) === 0) { redraw(); return; }  // a click, not a drawing
          if (kind === "bidirectional") pts = pts.concat(shortAxisFor(vp, pts[0], pts[1]));
          create(vp, kind, pts).then(function (m) { if (m && m.kind === "arrow") focusLabel(m); });
        },
        keyDown: function (vp, e) { return keyDown(vp, e, kind); }
      };
    }

    // ---------------------------------------------------------------- keyboard
    function keyDown(vp, e, kind) {
      var k = e.key, m = byId(selected), mine = here(vp);
      if (k === "Enter") {
        if (m && m.editable) { update(m, {points: m.points}); return true; }
        if (!canEdit || !vp.current()) return true;
        var c = vp.current(), cx = c.columns / 2, cy = c.rows / 2, r = Math.max(4, Math.min(c.columns, c.rows) / 8), pts;
        if (kind === "probe") pts = [[cx, cy]];
        else if (kind === "ellipse") pts = [[cx - r, cy - r], [cx + r, cy + r]];
        else pts = [[cx - r, cy], [cx + r, cy]];
        if (kind === "bidirectional") pts = pts.concat(shortAxisFor(vp, pts[0], pts[1]));
        create(vp, kind, pts);
        return true;
      }
      if (k === "n" || k === "N") {
        if (!mine.length) return true;
        var at = mine.findIndex(function (o) { return o.id === selected; });
        selected = mine[(at + 1) % mine.length].id; handle = 0; renderList(); redraw(); return true;
      }
      if (!m) return false;
      if (k === "Escape") { selected = null; renderList(); redraw(); return true; }
      if (!m.editable) return false;
      if (k === "h" || k === "H") { handle = (handle + 1) % m.points.length; redraw(); return true; }
      if (k === "Delete" || k === "Backspace") { remove(m); return true; }
      var step = e.shiftKey ? 10 : 1, move = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step]}[k];
      if (move) {
        var p = m.points[handle];
        m.points[handle] = clampPoint(vp, [p[0] + move[0], p[1] + move[1]]);
        m.display = preview(vp, m.kind, m.points) || m.display;
        redraw(); return true;  // saved with Enter
      }
      return false;
    }

    // ---------------------------------------------------------------- the list (edit label, go to, delete)
    var panel = document.createElement("section");
    panel.className = "measure-panel"; panel.id = "measure-panel";
    // A heading at the level of the viewer's own "Key images" (h2 on the viewer page, h3 beside the opinion).
    var keyHeading = root.querySelector(".key-images h2, .key-images h3, .key-images h4");
    var level = keyHeading ? keyHeading.tagName.toLowerCase() : "h2";
    panel.innerHTML = '<' + level + ' class="measure-title">Measurements</' + level + '><p class="muted small measure-help">Tools: Length (L), Bidirectional (B), ' +
      'Ellipse ROI (E), Probe (P), Arrow (A). Keys: Enter makes or saves, N next, H next handle, arrows move it, Delete removes.</p>' +
      '<p class="measure-status muted small" role="status" aria-live="polite"></p><ul class="measure-list plain"></ul>';
    // Under the viewer's panels, full width, so the key-image form stays where the viewer put it (in view at 1366 x 768).
    var panels = root.querySelector(".viewer-panels");
    if (panels) panels.parentNode.insertBefore(panel, panels.nextSibling); else root.appendChild(panel);
    var status = panel.querySelector(".measure-status"), list = panel.querySelector(".measure-list");
    function focusLabel(m) { var input = list.querySelector('[data-id="' + m.id + '"] input'); if (input) input.focus(); }
    function renderList() {
      list.textContent = "";
      items.forEach(function (m) {
        var li = document.createElement("li");
        li.dataset.id = m.id; li.className = "measure-item" + (m.id === selected ? " selected" : "");
        var what = document.createElement("span"); what.className = "measure-value";
        what.textContent = m.kind_label + (m.display ? ": " + m.display : "");
        li.appendChild(what);
        if (!m.calibrated) { var flag = document.createElement("span"); flag.className = "badge warn measure-flag"; flag.textContent = "uncalibrated"; li.appendChild(flag); }
        var label = document.createElement("input");
        label.type = "text"; label.maxLength = 300; label.value = m.label || ""; label.placeholder = m.kind === "arrow" ? "Text of the arrow" : "Label, e.g. Target lesion 1";
        label.setAttribute("aria-label", "Label of " + m.kind_label.toLowerCase() + " " + (m.display || ""));
        label.disabled = !m.editable;
        label.addEventListener("change", function () { update(m, {label: label.value}); });
        label.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); update(m, {label: label.value}); } });
        li.appendChild(label);
        var go = document.createElement("button"); go.type = "button"; go.className = "button small link"; go.textContent = "Show";
        go.addEventListener("click", function () {
          var vp = PV.active ? PV.active() : PV.viewports[0];
          selected = m.id; handle = 0;
          if (vp && !vp.goTo(m.sop_instance_uid, m.frame)) status.textContent = "That image is in another series.";
          renderList(); redraw();
        });
        li.appendChild(go);
        if (m.editable) {
          var del = document.createElement("button"); del.type = "button"; del.className = "button small danger"; del.textContent = "Delete";
          del.setAttribute("aria-label", "Delete " + m.kind_label.toLowerCase() + " " + (m.label || m.display || ""));
          del.addEventListener("click", function () { remove(m); });
          li.appendChild(del);
        }
        list.appendChild(li);
      });
      if (!items.length) { var none = document.createElement("li"); none.className = "muted small"; none.textContent = "None yet."; list.appendChild(none); }
      syncOpinionTable();
    }
    // The list beside the opinion form (templates/opinions/_measurements.html), kept in step without a reload.
    function syncOpinionTable() {
      var table = document.getElementById("measurements-list"), empty = document.getElementById("measurements-empty");
      if (!table) return;
      var body = table.querySelector("tbody"); body.textContent = "";
      items.forEach(function (m) {
        var tr = document.createElement("tr"); tr.dataset.measurementId = m.id;
        [m.label || m.kind_label, m.image, m.display].forEach(function (t, i) {
          var td = document.createElement("td"); td.textContent = t || "";
          if (i === 2 && !m.calibrated) { var f = document.createElement("span"); f.className = "badge warn"; f.textContent = "uncalibrated"; td.appendChild(document.createTextNode(" ")); td.appendChild(f); }
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      table.hidden = !items.length; if (empty) empty.hidden = !!items.length;
    }

    // Choosing a tool does not redraw the image: the flag is updated when the tool changes, too.
    function hook(vp) {
      if (vp.measureHooked) return;
      vp.measureHooked = true;
      var setTool = vp.setTool;
      vp.setTool = function (name) { setTool.call(vp, name); calibration(vp); };
    }
    PV.viewports.forEach(hook);
    PV.on("frame", hook);
    Object.keys(KINDS).forEach(function (kind) { PV.registerTool(kind, tool(kind)); });
    load();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
