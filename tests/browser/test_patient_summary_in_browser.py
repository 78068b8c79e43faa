"""The lead writes the summary for the patient: the reading level is shown and follows the text, the summary is
signed, and the referrer downloads its PDF beside the letter, in chromium."""
import pytest
from pypdf import PdfReader

from review_portal.letters.summary import latest_summary
from tests.browser.test_loop_in_browser import login, logout, wait_until
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

SAVED = "document.getElementById('save-state').dataset.state === 'saved'"
HARD = ("Notwithstanding considerable histopathological heterogeneity, multidisciplinary deliberation "
        "unequivocally substantiated the characterisation of the malignancy.")
PLAIN = "The team agrees you have breast cancer. They found one more detail about it."


def _grade(page) -> float:
    return float(page.locator("#reading-grade").inner_text())


def test_write_watch_the_reading_level_sign_and_download(live_server, page, db, make_case, users):
    base = live_server
    case = make_case("letter_delivered", patient_questions=("Will I need chemo?",))
    login(page, base, users["reviewer"].email)
    page.goto(f"{base}/cases/{case.id}/letters")
    page.click("text=Write the summary for the patient")
    page.click("#start-summary")
    # Prefilled from the signed opinion, in plain wording; the level is shown before any typing.
    assert "added some details" in page.input_value("#conclusion")
    assert "Aim for grade 8 or lower" in page.locator("#reading-level").inner_text()

    for name in ("#what_reviewed", "#conclusion", "#treatment"):
        page.fill(name, HARD)  # each keystroke marks the page unsaved at once
    wait_until(page, SAVED)  # saved by itself, and the server answered the grade
    hard_grade = _grade(page)
    assert hard_grade > 8 and "too hard" in page.locator("#reading-label").inner_text()
    assert page.locator("#reading-level").get_attribute("data-state") == "high"

    page.fill("#what_reviewed", "We looked at your scans and your reports.")
    page.fill("#conclusion", PLAIN)
    page.fill("#treatment", "They think you should have chemo before surgery.")
    page.fill("#answers-0", "Yes. The team suggests chemo first. It can shrink the tumor.")
    wait_until(page, SAVED)
    assert page.locator("#reading-level").get_attribute("data-state") == "good"
    assert _grade(page) <= 8 < hard_grade
    assert "grade" in page.locator("#reading-label").inner_text()
    db.expire_all()
    assert latest_summary(db, case.id).conclusion == PLAIN

    page.check("#summary-sign-form #attest")
    page.fill("#summary-sign-form #password", PASSWORD)
    page.click("text=Sign the summary for the patient")
    page.wait_for_url(f"{base}/cases/{case.id}/letters#patient-summary")
    assert "Summary for the patient, version 1 (PDF)" in page.content()
    logout(page)

    login(page, base, users["referring"].email)
    page.goto(f"{base}/cases/{case.id}/letters")
    with page.expect_download() as download_info:
        page.click("text=Summary for the patient, version 1 (PDF)")
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(download_info.value.path()).pages).split())
    for expected in (PLAIN, "Will I need chemo?", "Yes. The team suggests chemo first.", "Words used in this summary",
                     "Medicines that kill", "reading level: grade"):
        assert expected in text, expected
