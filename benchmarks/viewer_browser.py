"""The browser viewer in real chromium: frame rate during a window/level drag, bytes per frame on the wire, time to
the first image and to the whole series (prefetch on), for a 200-slice 512 x 512 CT.

    /work/main/.venv/bin/python benchmarks/viewer_browser.py [--slices 200] [--renderer auto|2d|both]

The series is synthesized from pydicom-data's 693_UNCR.dcm as in benchmarks/imaging.py (one series, new UIDs,
positions 1.25 mm apart, pixels varied slice to slice) and ingested into a throw-away portal served from this
process (werkzeug, threaded, SQLite). Chromium is Debian's (/usr/bin/chromium) with the flags of the browser
tests (--disable-gpu: WebGL, if offered, is software). Prints figures; asserts nothing.

Frame rate, two ways:
- "drag": Playwright moves the mouse across the image in 120 steps; the page counts requestAnimationFrame
  callbacks and the viewer's 'render' events over the drag; fps = renders / drag seconds (what the eye sees is
  at most one render per animation frame).
- "rAF-paced": the page changes the window once per requestAnimationFrame for 2 s through the same code path
  as a drag (viewport.setWindow) and counts the frames: the rate the viewer sustains when input is not the limit.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "scroll-window-level-7"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

# Injected before the page's scripts (not subject to the page's CSP): timestamps of the first image and of the
# whole series in the cache, and counters of animation frames and viewer renders.
PROBE = """
window.__bench = {first: null, all: null, renders: 0, frames: 0, counting: false};
document.addEventListener('DOMContentLoaded', function () {
  var b = window.__bench;
  window.PortalViewer.on('render', function () { b.renders++; });
  window.PortalViewer.on('frame', function () { if (b.first === null) b.first = performance.now(); });
  var poll = setInterval(function () {
    var info = window.PortalViewer.cacheInfo(), vp = window.PortalViewer.viewports[0];
    if (vp && vp.series && info.frames >= vp.series.count) { b.all = performance.now(); clearInterval(poll); }
  }, 5);
  (function tick() { if (b.counting) b.frames++; requestAnimationFrame(tick); })();
});
"""

PACED = """(() => new Promise(function (done) {
  var vp = window.PortalViewer.viewports[0], start = performance.now(), frames = 0, c = vp.window.center, w = vp.window.width;
  var times = [];
  (function step(now) {
    var t0 = performance.now();
    vp.setWindow(c + 200 * Math.sin(frames / 10), Math.max(50, w + 300 * Math.cos(frames / 13)), false);
    times.push(performance.now() - t0);
    frames++;
    if (now - start < 2000) requestAnimationFrame(step);
    else { times.sort(function (a, b) { return a - b; });
           done({fps: frames / ((performance.now() - start) / 1000), medianMs: times[times.length >> 1], p95Ms: times[Math.floor(times.length * 0.95)]}); }
  })(start);
}))()"""


def build_portal(workdir: Path, slices: int):
    from datetime import date

    from werkzeug.serving import make_server

    from benchmarks.imaging import synthesize
    from config import TestConfig
    from review_portal import create_app
    from review_portal.auth.models import Institution, Role
    from review_portal.auth.services import create_user
    from review_portal.cases.disciplines import seed_disciplines
    from review_portal.cases.lifecycle import CaseStatus
    from review_portal.cases.services import Referral
    from review_portal.clock import utcnow
    from review_portal.db import create_all, session
    from review_portal.imaging.services import (
        create_ingest,
        process_ingest,
        series_of_case,
    )
    from review_portal.uploads import UploadedFile
    from review_portal.workflow.referrals import submit_referral

    paths = synthesize(workdir / "series", slices, "uncompressed")
    app = create_app(TestConfig, DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}", STORAGE_DIR=str(workdir / "store"))
    create_all(app.extensions["db_engine"])
    with app.app_context():
        db = session()
        seed_disciplines(db)  # the migration has them; a schema made from the models does not
        hospital = Institution(name="Bench Hospital")
        db.add(hospital)
        db.flush()
        now = utcnow()
        user = create_user(db, email="bench@example.test", name="Bench Referrer", password=PASSWORD,
                           role=Role.REFERRING, now=now, institution=hospital)
        case, _ = submit_referral(db, app.extensions["storage"], Referral(
            patient_name="Bench Patient", patient_dob=date(1960, 1, 1), patient_sex="female", patient_mrn="B1",
            question="?", diagnosis_in_question="x", plan_in_question="y", review_type="radiology_read",
            cancer_site="pediatric", priority="routine"), documents=[], scans=[], by=user, ip="", now=now,
            turnaround_days=TestConfig.TURNAROUND_DAYS)
        case.status = CaseStatus.SUBMITTED.value
        job = create_ingest(db, app.extensions["storage"], case, [UploadedFile(p.name, p) for p in paths],
                            by=user, ip="", now=now)
        process_ingest(db, app.extensions["storage"], job.id, now=now)
        [series] = series_of_case(db, case.id)
        ids = (case.id, series.id)
        db.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}", ids


def measure(browser, base: str, case_id: int, series_id: int, renderer: str, slices: int) -> dict:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(120000)
    page.goto(f"{base}/login")
    page.fill("#email", "bench@example.test")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.endswith("/cases"))
    page.add_init_script(PROBE)
    wire = {"pixels": [], "other": 0}

    def on_response(response):
        if "/pixels" in response.url:
            wire["pixels"].append(int(response.headers.get("content-length", "0")))

    page.on("response", on_response)
    page.goto(f"{base}/cases/{case_id}/series/{series_id}?renderer={renderer}")
    deadline = time.monotonic() + 300
    while page.evaluate("window.__bench.all") is None and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    timing = page.evaluate("({first: window.__bench.first, all: window.__bench.all, "
                           "nav: performance.getEntriesByType('navigation')[0].startTime})")
    used = page.evaluate("document.getElementById('viewer').dataset.renderer")
    requests_before = page.evaluate("window.PortalViewer.stats.requests")
    # A real mouse drag: 120 steps across the image.
    box = page.locator("#viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.evaluate("window.__bench.renders = 0; window.__bench.frames = 0; window.__bench.counting = true; window.__bench.t0 = performance.now()")
    for step in range(1, 121):
        page.mouse.move(cx + step * 2, cy + step)
    drag = page.evaluate("(() => { const b = window.__bench; b.counting = false; "
                         "return {renders: b.renders, frames: b.frames, seconds: (performance.now() - b.t0) / 1000}; })()")
    page.mouse.up()
    requests_during_drag = page.evaluate("window.PortalViewer.stats.requests") - requests_before
    paced = page.evaluate(PACED)
    context.close()
    pixel_sizes = wire["pixels"]
    return {
        "renderer": used, "first_ms": timing["first"], "all_ms": timing["all"],
        "drag_fps": min(drag["renders"], drag["frames"]) / drag["seconds"], "drag_raf_fps": drag["frames"] / drag["seconds"],
        "paced_fps": paced["fps"], "render_median_ms": paced["medianMs"], "render_p95_ms": paced["p95Ms"],
        "requests_during_drag": requests_during_drag, "frames_fetched": len(pixel_sizes),
        "bytes_per_frame": statistics.mean(pixel_sizes) if pixel_sizes else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--renderer", choices=("auto", "2d", "both"), default="both")
    args = parser.parse_args()
    import logging

    from playwright.sync_api import sync_playwright

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="viewer-bench-") as tmp:
        t = time.perf_counter()
        server, base, (case_id, series_id) = build_portal(Path(tmp), args.slices)
        print(f"{args.slices}-slice 512x512 CT synthesized and ingested in {time.perf_counter() - t:.1f} s", flush=True)
        raw = 512 * 512 * 2
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                for renderer in (("auto", "2d") if args.renderer == "both" else (args.renderer,)):
                    r = measure(browser, base, case_id, series_id, renderer, args.slices)
                    print(f"\nrenderer asked: {renderer}, used: {r['renderer']}")
                    print(f"  time to first image        {r['first_ms']:8.0f} ms after navigation start")
                    print(f"  time to whole series       {r['all_ms']:8.0f} ms ({r['frames_fetched']} frames fetched, prefetch on)")
                    print(f"  bytes per frame on wire    {r['bytes_per_frame'] / 1024:8.1f} KiB gzip (raw int16 {raw / 1024:.0f} KiB, "
                          f"{r['bytes_per_frame'] / raw:.0%})")
                    print(f"  W/L mouse drag             {r['drag_fps']:8.1f} fps rendered (animation frames {r['drag_raf_fps']:.1f}/s), "
                          f"{r['requests_during_drag']} server requests")
                    print(f"  W/L once per rAF, 2 s      {r['paced_fps']:8.1f} fps; one W/L render median {r['render_median_ms']:.2f} ms, "
                          f"p95 {r['render_p95_ms']:.2f} ms", flush=True)
                browser.close()
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
