"""The canvas viewer in chromium: window/level without the server, the pixels it draws, the overlay, the layout on a
laptop and a phone, touch gestures, comparison with synchronised scrolling, and the axe check."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread

from review_portal.imaging.services import create_ingest, process_ingest, series_of_case
from review_portal.uploads import UploadedFile
from tests.browser.test_accessibility import serious_violations
from tests.browser.test_loop_in_browser import login, wait_until
from tests.conftest import NOW, confirm_test_scans, testdata
from tests.imaging_helpers import synth_series

pytestmark = pytest.mark.browser

SHOWN = "document.getElementById('slice-image').dataset"
LOADED = f"{SHOWN}.loaded === '1'"
ALL_CACHED = "window.PortalViewer.cacheInfo().frames >= {n}"
# The red channel of what the image canvas shows (WebGL or 2D), read back through a 2D canvas.
CANVAS_RED = """(() => { const c = document.getElementById('slice-image'); const t = document.createElement('canvas');
  t.width = c.width; t.height = c.height; const x = t.getContext('2d'); x.drawImage(c, 0, 0);
  const d = x.getImageData(0, 0, c.width, c.height).data; const out = [];
  for (let i = 0; i < d.length; i += 4) out.push(d[i]); return out; })()"""


def _ingest(db, storage, case, users, paths):
    job = create_ingest(db, storage, case, [UploadedFile(p.name, p) for p in paths], by=users["referring"], ip="", now=NOW)
    process_ingest(db, storage, job.id, now=NOW)
    # The synthetic series is built from a pydicom sample that names its own patient: confirmed, as the referrer
    # would, so these tests see the reading layout (an open identity question puts its banner above the viewer).
    confirm_test_scans(db, case, users["coordinator"])
    db.commit()
    return series_of_case(db, case.id)


def _context_page(browser, **options):
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(20000)
    return context, page


def _wl(page, selector="#wl-readout"):
    text = page.locator(selector).first.inner_text()
    width, level = (int(x) for x in text.split(" · ")[0].replace("W ", "").replace(" / L ", " ").split())
    return width, level


def test_window_level_drag_asks_the_server_nothing(live_server, page, db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 10))
    login(page, live_server, users["reviewer"].email)
    page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
    wait_until(page, LOADED)
    wait_until(page, ALL_CACHED.format(n=10))  # the prefetch has the whole series
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    before = _wl(page)
    box = page.locator("#viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 30, steps=30)
    page.mouse.up()
    after = _wl(page)
    assert after[0] > before[0] and after[1] > before[1]
    wait_until(page, f"{SHOWN}.window === '{after[1]},{after[0]}'")
    # Scrolling through the cached series costs nothing either.
    page.keyboard.press("Home")
    page.keyboard.press("End")
    wait_until(page, f"{SHOWN}.index === '9'")
    assert requests == []
    assert page.evaluate("window.PortalViewer.stats.requests") == 10


@pytest.mark.parametrize("renderer", ["2d", "auto"])
def test_canvas_shows_the_windowed_values_and_invert(renderer, live_server, page, db, storage, make_case, users):
    case = make_case("in_review")
    [series] = _ingest(db, storage, case, users, [testdata("CT_small.dcm")])
    login(page, live_server, users["reviewer"].email)
    page.goto(f"{live_server}/cases/{case.id}/series/{series.id}?renderer={renderer}")
    wait_until(page, LOADED)
    used = page.evaluate("document.getElementById('viewer').dataset.renderer")
    assert used == "2d" if renderer == "2d" else used in ("webgl", "2d")
    page.select_option("#preset", label="Soft tissue (40/400)")
    wait_until(page, f"{SHOWN}.window === '40,400'")
    ds = dcmread(testdata("CT_small.dcm"))
    values = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    lo, span = 40 - 0.5 - 399 / 2, 399
    expected = np.clip(np.rint((values - lo) / span * 255), 0, 255).astype(int).ravel()
    shown = np.array(page.evaluate(CANVAS_RED))
    assert shown.shape == expected.shape
    assert np.abs(shown - expected).max() <= 1, used
    assert len(set(shown.tolist())) > 50  # an image, not a flat field
    page.click("[data-action=invert]")
    wait_until(page, f"{SHOWN}.invert === '1'")
    inverted = np.array(page.evaluate(CANVAS_RED))
    assert np.abs(inverted - (255 - expected)).max() <= 1
    assert "inverted" in page.locator(".wl-overlay").first.inner_text()


def test_overlay_layout_and_shortcuts_on_a_laptop(live_server, browser, db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 8))
    context, page = _context_page(browser, viewport={"width": 1366, "height": 768})
    try:
        login(page, live_server, users["reviewer"].email)
        page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
        wait_until(page, LOADED)
        # Every control in view without scrolling.
        controls = ["#preset", "#viewport", "#slice-slider", "#key-caption", "#mark-key", "#cine-fps",
                    "#tool-group .tool", ".viewer-toolbar [data-action]"]
        for selector in controls:
            for element in page.locator(selector).all():
                box = element.bounding_box()
                assert box is not None, selector
                assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 1366 and box["y"] + box["height"] <= 768, (selector, box)
        # The overlay: W/L numbers, position and thickness, orientation markers, patient and study.
        assert page.locator(".wl-overlay").first.inner_text().startswith("W ")
        ds = dcmread(testdata("CT_small.dcm"))
        assert page.locator(".thickness-readout").first.inner_text() == f"Thickness {float(ds.SliceThickness):.1f} mm"
        assert [page.locator(f".orient-{side}").first.inner_text() for side in ("left", "right", "top", "bottom")] == ["R", "L", "A", "P"]
        assert page.locator(".patient-name").first.inner_text() == case.patient_name
        assert case.patient_mrn in page.locator(".patient-id").first.inner_text()
        assert page.locator(".series-description").first.inner_text() == "Synthetic chest"
        # Shortcuts: presets 1-6, overlay, help.
        page.locator("#viewport").focus()
        page.keyboard.press("2")
        wait_until(page, f"{SHOWN}.window === '-600,1500'")
        assert page.locator("#wl-readout").inner_text() == "W 1500 / L -600"
        page.keyboard.press("3")
        wait_until(page, f"{SHOWN}.window === '400,1800'")
        page.keyboard.press("o")
        assert not page.locator(".wl-overlay").first.is_visible()
        page.keyboard.press("o")
        assert page.locator(".wl-overlay").first.is_visible()
        page.keyboard.press("?")
        assert page.locator("#viewer-help").is_visible()
        help_text = page.locator("#viewer-help").inner_text()
        for shortcut in ("1 – 6", "Invert", "Cine", "Pinch", "Double tap"):
            assert shortcut in help_text
        page.keyboard.press("Escape")
        assert not page.locator("#viewer-help").is_visible()
        page.click("[data-action=help]")
        assert page.locator("#viewer-help").is_visible()
        # Cine at the chosen rate moves through the slices, and stops.
        page.fill("#cine-fps", "20")
        start = page.evaluate(f"{SHOWN}.index")
        page.click("[data-action=cine]")
        wait_until(page, f"{SHOWN}.index !== '{start}'")
        page.click("[data-action=cine]")
        assert page.locator("[data-action=cine]").get_attribute("aria-pressed") == "false"
    finally:
        context.close()


def _touch(cdp, kind, points):
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]})


def test_touch_on_a_phone(live_server, browser, db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 24))
    context, page = _context_page(browser, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        login(page, live_server, users["reviewer"].email)
        page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
        wait_until(page, LOADED)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.locator("#viewport").scroll_into_view_if_needed()
        box = page.locator("#viewport").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        cdp = page.context.new_cdp_session(page)
        start = int(page.evaluate(f"{SHOWN}.index"))
        # One finger down the image: later slices.
        _touch(cdp, "touchStart", [(cx, cy - 50)])
        for step in range(1, 11):
            _touch(cdp, "touchMove", [(cx, cy - 50 + step * 10)])
        _touch(cdp, "touchEnd", [])
        wait_until(page, f"Number({SHOWN}.index) >= {start + 5}")
        # Pinch out: zoom in.
        _touch(cdp, "touchStart", [(cx - 30, cy), (cx + 30, cy)])
        for step in range(1, 7):
            _touch(cdp, "touchMove", [(cx - 30 - step * 10, cy), (cx + 30 + step * 10, cy)])
        _touch(cdp, "touchEnd", [])
        zoomed = page.locator("#zoom-readout").inner_text()
        assert zoomed.startswith("Zoom ") and 2.5 <= float(zoomed[5:8]) <= 3.5  # three times the distance
        # Two fingers dragged together to the right and down: wider window, higher level.
        before = _wl(page)
        _touch(cdp, "touchStart", [(cx - 40, cy - 20), (cx + 40, cy - 20)])
        for step in range(1, 7):
            _touch(cdp, "touchMove", [(cx - 40 + step * 10, cy - 20 + step * 5), (cx + 40 + step * 10, cy - 20 + step * 5)])
        _touch(cdp, "touchEnd", [])
        after = _wl(page)
        assert after[0] > before[0] and after[1] > before[1]
        assert page.locator("#zoom-readout").inner_text() == zoomed  # the drag did not zoom
        # Double tap: back to the start.
        for _ in range(2):
            _touch(cdp, "touchStart", [(cx, cy)])
            _touch(cdp, "touchEnd", [])
        wait_until(page, "document.getElementById('zoom-readout').textContent === ''")
        assert _wl(page) != after
    finally:
        context.close()


def test_compare_scrolls_in_sync_by_position_and_links_the_window(live_server, page, db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    main = synth_series(tmp_path / "main", 6)
    prior = synth_series(tmp_path / "prior", 4)
    frame_of_reference = dcmread(main[0]).FrameOfReferenceUID
    for path in prior:  # the prior study on the same table position: one frame of reference
        ds = dcmread(path)
        ds.FrameOfReferenceUID, ds.SeriesDescription = frame_of_reference, "Prior chest"
        ds.save_as(path)
    _ingest(db, storage, case, users, main + prior)
    login(page, live_server, users["reviewer"].email)
    page.goto(f"{live_server}/cases/{case.id}/viewer")
    wait_until(page, LOADED)
    # It opens the series with the most slices.
    assert page.locator("#slice-readout").inner_text().startswith("Slice 4 / 6")
    page.click("[data-action=compare]")
    second = page.locator(".viewport-pane[data-pane='1']")
    wait_until(page, "document.querySelectorAll('.viewport-pane')[1].querySelector('.image-canvas').dataset.loaded === '1'")
    wait_until(page, "document.querySelectorAll('.series-label')[1].textContent.includes('Prior chest')")
    page.locator("#viewport").focus()
    page.keyboard.press("End")  # 12.5 mm: the prior's nearest is its last slice, 7.5 mm
    wait_until(page, "document.querySelectorAll('.slice-readout')[1].textContent.startsWith('Slice 4 / 4 · position 7.5 mm')")
    page.keyboard.press("Home")
    wait_until(page, "document.querySelectorAll('.slice-readout')[1].textContent.startsWith('Slice 1 / 4 · position 0.0 mm')")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    wait_until(page, "document.querySelectorAll('.slice-readout')[1].textContent.startsWith('Slice 3 / 4 · position 5.0 mm')")
    # Separate windows by default; linked when asked.
    page.select_option("#preset", label="Lung (-600/1500)")
    assert _wl(page, ".wl-overlay") == (1500, -600)
    assert second.locator(".wl-overlay").inner_text() != "W 1500 / L -600"
    page.check("#link-window")
    page.select_option("#preset", label="Bone (400/1800)")
    wait_until(page, "document.querySelectorAll('.wl-overlay')[1].textContent === 'W 1800 / L 400'")
    # Each view has its own series picker; scrolling the second moves the first.
    second.locator(".pane-series").select_option(label="CT Synthetic chest (6)")
    wait_until(page, "document.querySelectorAll('.series-label')[1].textContent.includes('Synthetic chest')")
    assert serious_violations(page) == []


def test_the_viewer_passes_axe_with_its_panels_open(live_server, page, db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 3))
    login(page, live_server, users["reviewer"].email)
    page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
    wait_until(page, LOADED)
    page.click("[data-action=help]")
    assert serious_violations(page) == []


def test_a_frame_the_browser_cannot_take_is_windowed_on_the_server(live_server, page, db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 3))
    login(page, live_server, users["reviewer"].email)
    # As for values wider than 16 bits: the pixels answer is a 400, and the viewer shows the rendered PNG instead.
    page.route("**/pixels", lambda route: route.fulfill(status=400, content_type="application/json", body='{"error": "no"}'))
    page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
    wait_until(page, f"{SHOWN}.loaded === 'server'")
    wait_until(page, "(() => { const i = document.querySelector('.fallback-image'); return !i.hidden && i.complete && i.naturalWidth > 0; })()")
    assert "/slices/1.png" in page.locator(".fallback-image").get_attribute("src")
    assert "Windowed on the server" in page.locator(".renderer-note").inner_text()
    page.select_option("#preset", label="Lung (-600/1500)")
    wait_until(page, "document.querySelector('.fallback-image').getAttribute('src').endsWith('/slices/1.png?wc=-600&ww=1500')")


def test_the_page_cache_stays_within_its_byte_budget(app, live_server, page, db, storage, make_case, users, tmp_path):
    app.config["VIEWER_CACHE_MB"] = 1  # 128 x 128 int16 slices are 32 KiB: about thirty fit
    case = make_case("in_review")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 48))
    login(page, live_server, users["reviewer"].email)
    page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
    wait_until(page, LOADED)
    page.locator("#viewport").focus()
    for key in ("Home", "End", "Home"):
        page.keyboard.press(key)
        page.wait_for_timeout(300)
    wait_until(page, f"{SHOWN}.index === '0'")
    info = page.evaluate("window.PortalViewer.cacheInfo()")
    assert info["limit"] == 1024 * 1024
    assert 0 < info["bytes"] <= info["limit"] and 8 <= info["frames"] < 48
    # The frame on screen is kept (pinned) whatever else is evicted.
    shown = page.evaluate("window.PortalViewer.viewports[0].info().pixels_url")
    assert shown in page.evaluate("window.PortalViewer.cachedUrls()")


# A tool as static/js/measure.js registers one (the contract in docs/viewer.md), recording what the core hands it.
PROBE_TOOL = """(() => {
  window.__probe = {downs: [], moves: 0, ups: [], renders: 0, frames: 0, keys: []};
  window.PortalViewer.on('render', function (vp, ctx) { window.__probe.renders++; window.__probe.ctx = !!ctx.fillRect; });
  window.PortalViewer.on('frame', function () { window.__probe.frames++; });
  window.PortalViewer.registerTool('probe', {label: 'Probe', key: 'q',
    pointerDown: function (vp, p) { window.__probe.downs.push([p.x, p.y]); },
    pointerMove: function (vp, p, ev) { if (ev.buttons) window.__probe.moves++; },
    pointerUp: function (vp, p) { window.__probe.ups.push([p.x, p.y]); },
    keyDown: function (vp, ev) { window.__probe.keys.push(ev.key); return ev.key === 'x'; }});
})()"""


def test_a_registered_tool_gets_the_pointer_in_image_coordinates(live_server, page, db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 5))
    login(page, live_server, users["reviewer"].email)
    page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
    wait_until(page, LOADED)
    page.evaluate(PROBE_TOOL)
    page.click("#tool-group [data-tool=probe]")
    assert page.locator("#tool-group [data-tool=probe]").get_attribute("aria-pressed") == "true"
    window_before = page.locator("#wl-readout").inner_text()
    # Image pixel (32, 96) of the 128 x 128 slice, wherever zoom and fit put it.
    page.click("[data-action=zoom-in]")
    target = page.evaluate("window.PortalViewer.viewports[0].imageToCanvas(32, 96)")
    box = page.locator("#viewport").bounding_box()
    # The image canvas is drawn where imageToCanvas says: its corners are image (0, 0) and (128, 128).
    corners = page.evaluate("window.PortalViewer.viewports[0].imageToCanvas(0, 0)"), \
        page.evaluate("window.PortalViewer.viewports[0].imageToCanvas(128, 128)")
    drawn = page.locator("#slice-image").bounding_box()
    assert abs(drawn["x"] - box["x"] - corners[0]["x"]) < 1 and abs(drawn["y"] - box["y"] - corners[0]["y"]) < 1
    assert abs(drawn["x"] + drawn["width"] - box["x"] - corners[1]["x"]) < 1
    assert abs(drawn["y"] + drawn["height"] - box["y"] - corners[1]["y"]) < 1
    page.mouse.move(box["x"] + target["x"], box["y"] + target["y"])
    page.mouse.down()
    page.mouse.move(box["x"] + target["x"] + 30, box["y"] + target["y"], steps=3)
    page.mouse.up()
    probe = page.evaluate("window.__probe")
    (dx, dy), = probe["downs"]
    assert abs(dx - 32) < 0.5 and abs(dy - 96) < 0.5
    assert probe["moves"] >= 3 and len(probe["ups"]) == 1 and probe["ups"][0][0] > dx
    assert probe["renders"] >= 4 and probe["ctx"] is True
    assert page.locator("#wl-readout").inner_text() == window_before  # the tool had the drag, not W/L
    current = page.evaluate("(() => { const c = window.PortalViewer.viewports[0].current(); "
                            "return {n: c.values.length, rows: c.rows, spacing: c.pixelSpacing, uid: c.sopInstanceUid, v: c.values[96 * 128 + 32]}; })()")
    ds = dcmread(testdata("CT_small.dcm"))
    assert current["n"] == 128 * 128 and current["spacing"] == [float(v) for v in ds.PixelSpacing]
    # goTo by SOP Instance UID and frame; keys go to the tool first ('x' consumed, arrows still scroll).
    page.keyboard.press("x")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("window.__probe.keys") == ["x", "ArrowDown"]
    uid = page.evaluate("window.PortalViewer.viewports[0].series.frames[0].sop_instance_uid")
    assert page.evaluate(f"window.PortalViewer.viewports[0].goTo('{uid}', 0)") is True
    wait_until(page, f"{SHOWN}.index === '0'")
    assert page.evaluate("window.__probe.frames") >= 2
    page.keyboard.press("q")  # its key toggles it off again
    assert page.locator("#tool-group [data-tool=window]").get_attribute("aria-pressed") == "true"


def test_compare_without_a_common_frame_of_reference_scrolls_by_index(live_server, page, db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    _ingest(db, storage, case, users, synth_series(tmp_path / "a", 6) + synth_series(tmp_path / "b", 5))
    login(page, live_server, users["reviewer"].email)
    page.goto(f"{live_server}/cases/{case.id}/viewer")
    wait_until(page, LOADED)
    page.click("[data-action=compare]")
    wait_until(page, "document.querySelectorAll('.slice-readout')[1].textContent.startsWith('Slice 3 / 5')")
    page.locator("#viewport").focus()
    assert page.locator("#slice-readout").inner_text().startswith("Slice 4 / 6")  # opening the other view moved nothing
    page.keyboard.press("ArrowUp")  # 4 -> 3 of 6: the other view one back too, 3 -> 2 of 5
    wait_until(page, "document.querySelectorAll('.slice-readout')[1].textContent.startsWith('Slice 2 / 5')")
    assert page.locator("#slice-readout").inner_text().startswith("Slice 3 / 6")
    page.uncheck("#sync-scroll")
    page.locator("#viewport").focus()
    page.keyboard.press("ArrowUp")
    wait_until(page, "document.getElementById('slice-readout').textContent.startsWith('Slice 2 / 6')")
    page.wait_for_timeout(200)
    assert page.locator(".slice-readout").nth(1).inner_text().startswith("Slice 2 / 5")
