"""The measuring tools in chromium, on the synthetic CT phantom: a length drawn across the square matches its known
size (the server's figure, within 1% or a pixel), survives a reload, is labelled and kept from the keyboard, and
reaches the signed letter (read back with pypdf). An image without pixel spacing says "uncalibrated"."""
import io

import pytest
from pypdf import PdfReader

from review_portal.imaging import services as imaging
from review_portal.letters.services import letters_for_case
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.uploads import UploadedFile
from tests.browser.test_loop_in_browser import login, wait_until
from tests.conftest import NOW, PASSWORD, confirm_test_scans
from tests.phantom import SPACING, SQUARE, write_phantom

pytestmark = pytest.mark.browser

LOADED = "document.getElementById('slice-image').dataset.loaded === '1'"
SETTLED = "window.PortalViewer.measurements && window.PortalViewer.measurements.pending === 0"


def _case_with_phantom(db, storage, make_case, users, tmp_path, **phantom):
    case = make_case("in_review")
    path = write_phantom(tmp_path / "phantom" / "p.dcm", **phantom)
    imaging.ingest_scans(db, storage, case, [UploadedFile("p.dcm", path)], by=users["referring"], ip="", now=NOW)
    confirm_test_scans(db, case, users["coordinator"])  # the phantom is built from a pydicom sample file
    db.commit()
    return case


def _screen(page, x, y):
    """Page coordinates of image point (x, y) in the first viewport."""
    at = page.evaluate("([x, y]) => { const vp = window.PortalViewer.viewports[0]; const p = vp.imageToCanvas(x, y);"
                       " const r = vp.el.getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }", [x, y])
    return at[0], at[1]


def _drag(page, a, b):
    page.mouse.move(*_screen(page, *a))
    page.mouse.down()
    page.mouse.move(*_screen(page, *b), steps=5)
    page.mouse.up()


def test_length_on_the_phantom_survives_a_reload_and_reaches_the_letter(live_server, page, db, storage, make_case,
                                                                       users, tmp_path, app):
    case = _case_with_phantom(db, storage, make_case, users, tmp_path)
    login(page, live_server, users["reviewer"].email, app)
    page.goto(f"{live_server}/cases/{case.id}/opinion")
    wait_until(page, LOADED)
    wait_until(page, "!!document.querySelector('[data-tool=length]')")

    page.click("[data-tool=length]")
    s = SQUARE
    _drag(page, (s["x0"], s["y0"] + 5), (s["x0"] + s["side"], s["y0"] + 5))
    wait_until(page, "document.querySelectorAll('#measure-panel .measure-item').length === 1")
    wait_until(page, SETTLED)
    m = page.evaluate("window.PortalViewer.measurements.items()[0]")
    known = s["side"] * SPACING[1]  # 21.0 mm
    assert m["calibrated"] is True and m["kind"] == "length"
    assert abs(m["values"]["length"] - known) <= max(0.01 * known, SPACING[1]), m["values"]
    item = page.locator("#measure-panel .measure-item").first
    assert item.locator(".measure-value").inner_text() == f"Length: {m['display']}"
    assert item.locator(".measure-flag").count() == 0  # calibrated: no flag
    # The list beside the opinion form follows without a reload.
    assert m["display"] in page.locator("#measurements-list").inner_text()

    # Label it from the list; the label is saved with Enter.
    item.locator("input").fill("Target lesion 1")
    item.locator("input").press("Enter")
    wait_until(page, SETTLED)
    wait_until(page, "window.PortalViewer.measurements.items()[0].label === 'Target lesion 1'")

    # From the keyboard: Esc lets go of the selected one, Enter makes a new one at the centre (selected), the arrow
    # keys move its handle, Enter saves it, Delete removes it.
    page.locator("#viewport").focus()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    wait_until(page, "window.PortalViewer.measurements.items().length === 2")
    wait_until(page, SETTLED)
    before = page.evaluate("window.PortalViewer.measurements.items()[1].values.length")
    for _ in range(4):
        page.keyboard.press("ArrowLeft")  # the first handle, 4 pixels further from the second
    page.keyboard.press("Enter")
    wait_until(page, SETTLED)
    after = page.evaluate("window.PortalViewer.measurements.items()[1].values.length")
    assert after - before == pytest.approx(4 * SPACING[1])  # recomputed by the server: 4 px x 0.7 mm
    page.keyboard.press("Delete")
    wait_until(page, "window.PortalViewer.measurements.items().length === 1")
    wait_until(page, SETTLED)

    page.reload()
    wait_until(page, LOADED)
    wait_until(page, "document.querySelectorAll('#measure-panel .measure-item').length === 1")
    again = page.evaluate("window.PortalViewer.measurements.items()[0]")
    assert (again["id"], again["label"], again["display"]) == (m["id"], "Target lesion 1", m["display"])
    assert "Target lesion 1" in page.locator("#measurements-list").inner_text()

    save_draft(db, case, OpinionDraft("refined", "modify", "Stage IB.", "Lobectomy.", "Second focus."),
               based_on_version=None, by=case.reviewer, ip="", now=NOW)
    db.commit()
    page.goto(f"{live_server}/cases/{case.id}/opinion")
    page.check("#sign-form input[name=attest]")
    page.fill("#sign-form input[name=password]", PASSWORD)
    page.click("#sign-form button[type=submit]")
    page.wait_for_load_state()
    db.expire_all()
    [letter] = letters_for_case(db, case.id)
    reader = PdfReader(io.BytesIO(storage.read_bytes(letter.blob_key)))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert "MEASUREMENTS" in text and f"Target lesion 1 CT Phantom, series 1, image 1 Length {m['display']}" in text


def test_an_image_without_pixel_spacing_is_flagged_uncalibrated(live_server, page, db, storage, make_case, users,
                                                               tmp_path, app):
    case = _case_with_phantom(db, storage, make_case, users, tmp_path, spacing=None)
    login(page, live_server, users["reviewer"].email, app)
    page.goto(f"{live_server}/cases/{case.id}/opinion")
    wait_until(page, LOADED)
    wait_until(page, "!!document.querySelector('[data-tool=length]')")
    page.locator("#viewport").focus()
    page.keyboard.press("l")  # the length tool's shortcut
    wait_until(page, "!document.querySelector('.measure-uncalibrated').hidden")
    assert "Uncalibrated" in page.locator(".measure-uncalibrated").inner_text()
    _drag(page, (10, 10), (40, 50))
    wait_until(page, "window.PortalViewer.measurements.items().length === 1")
    m = page.evaluate("window.PortalViewer.measurements.items()[0]")
    assert m["calibrated"] is False and m["display"].endswith("px (uncalibrated)")
    assert abs(m["values"]["length"] - 50.0) <= 1.0
    assert page.locator("#measure-panel .measure-flag").inner_text() == "uncalibrated"
