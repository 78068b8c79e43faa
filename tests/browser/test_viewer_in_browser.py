"""The scan viewer in chromium: scroll by wheel, keys and slider; window/level by drag and presets; key images."""
import pytest
from sqlalchemy import select

from review_portal.uploads import UploadedFile
from review_portal.imaging.models import KeyImage
from review_portal.imaging.services import create_ingest, process_ingest, series_of_case
from tests.browser.test_loop_in_browser import login, wait_until
from tests.conftest import NOW
from tests.imaging_helpers import synth_series

pytestmark = pytest.mark.browser

# The slice is drawn on a canvas from the frame's stored values: its data attributes say what is on it.
SHOWN = "document.getElementById('slice-image').dataset"
LOADED = f"{SHOWN}.loaded === '1'"


def test_scroll_window_level_and_key_image(live_server, page, db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    job = create_ingest(db, storage, case, [UploadedFile(p.name, p) for p in synth_series(tmp_path / "s", 12)],
                        by=users["referring"], ip="", now=NOW)
    process_ingest(db, storage, job.id, now=NOW)
    db.commit()
    [series] = series_of_case(db, case.id)

    login(page, live_server, users["reviewer"].email)
    # Offered, not yet accepted: the reviewer may look at the scans but keeps no key image.
    page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
    wait_until(page, LOADED)
    assert page.locator("#key-caption").count() == 0
    page.goto(f"{live_server}/cases/{case.id}")
    page.click("#accept-offer")
    assert "In review" in page.locator(".head-badges").inner_text()

    page.goto(f"{live_server}/cases/{case.id}/series/{series.id}")
    wait_until(page, LOADED)
    assert page.locator("#wl-readout").inner_text().startswith("W ")  # numbers, also for the file's own window
    readout = page.locator("#slice-readout")
    assert readout.inner_text().startswith("Slice 7 / 12 · position 15.0 mm")

    viewport = page.locator("#viewport")
    viewport.hover()
    page.mouse.wheel(0, 120)
    wait_until(page, "document.getElementById('slice-readout').textContent.startsWith('Slice 8 / 12')")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    wait_until(page, "document.getElementById('slice-readout').textContent.startsWith('Slice 6 / 12')")
    page.keyboard.press("End")
    wait_until(page, "document.getElementById('slice-readout').textContent.startsWith('Slice 12 / 12 · position 27.5 mm')")
    page.locator("#slice-slider").fill("2")
    wait_until(page, "document.getElementById('slice-readout').textContent.startsWith('Slice 3 / 12')")
    wait_until(page, f"{SHOWN}.index === '2'")

    # Presets, then drag: right widens the window, down raises the level.
    page.select_option("#preset", label="Lung (-600/1500)")
    wait_until(page, f"{SHOWN}.window === '-600,1500'")
    assert page.locator("#wl-readout").inner_text() == "W 1500 / L -600"
    box = viewport.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 20, steps=4)
    page.mouse.up()
    wl = page.locator("#wl-readout").inner_text()
    width, level = (int(x) for x in wl.replace("W ", "").replace(" / L ", " ").split())
    assert width > 1500 and level > -600
    wait_until(page, f"{SHOWN}.window === '{level},{width}'")

    # Zoom and reset.
    page.click("[data-action=zoom-in]")
    assert "Zoom 1.3" in page.locator("#zoom-readout").inner_text()
    page.click("[data-action=reset]")
    # Back to the file's window (this file has none: the slice's own range), in numbers.
    assert page.locator("#wl-readout").inner_text().startswith("W ") and page.locator("#wl-readout").inner_text() != wl
    assert page.locator("#preset").input_value() == ""
    assert page.locator("#zoom-readout").inner_text() == ""

    # Key image at a preset window.
    page.select_option("#preset", label="Bone (400/1800)")
    page.fill("#key-caption", "Lytic lesion T7")
    page.click("#mark-key")
    wait_until(page, "document.querySelectorAll('#key-image-list li').length === 1")
    assert "Slice 3 · W 1800 / L 400 · Lytic lesion T7" in page.locator("#key-image-list").inner_text()
    db.expire_all()
    [key] = db.scalars(select(KeyImage).where(KeyImage.case_id == case.id)).all()
    assert (key.slice_index, key.window_center, key.window_width, key.caption) == (2, 400.0, 1800.0, "Lytic lesion T7")

    # Header panel.
    page.click("#dicom-header summary")
    wait_until(page, "document.querySelectorAll('#dicom-header tbody tr').length > 20")
    assert "Synthetic chest" in page.locator("#dicom-header").inner_text()

    # Remove the key image again.
    page.click("#key-image-list .unmark")
    wait_until(page, "document.querySelectorAll('#key-image-list li').length === 0")
    db.expire_all()
    assert db.scalars(select(KeyImage)).all() == []
