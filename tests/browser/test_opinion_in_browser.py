"""The reviewer writes (autosaved), signs, and the referrer downloads the letter, in chromium."""
import pytest
from pypdf import PdfReader

from review_portal.opinions.services import opinion_for_case
from tests.browser.test_loop_in_browser import login, logout, wait_until
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

SAVED = "document.getElementById('save-state').dataset.state === 'saved'"


def test_autosave_conflict_sign_and_download(live_server, browser, page, db, make_case, users):
    base = live_server
    case = make_case("in_review")
    login(page, base, users["reviewer"].email)
    page.goto(f"{base}/cases/{case.id}/opinion")
    # A second tab on the same draft, opened now: it will be stale once the first tab saves.
    other = page.context.new_page()
    other.goto(f"{base}/cases/{case.id}/opinion")

    assert page.locator("#save-state").inner_text() == "Not saved yet"
    page.check("input[name=diagnosis_concordance][value=refined]")
    page.fill("#reviewer_diagnosis", "Invasive lobular carcinoma, grade 2.")
    page.fill("#rationale", "E-cadherin negative on review.")
    page.fill("#tnm_t", "pT2")
    page.check("input[name=plan_concordance][value=modify]")
    page.fill("#recommended_plan", "Add MRI before surgery.")
    page.check("input[name=urgency][value=prompt]")
    wait_until(page, SAVED)  # nobody pressed a button
    assert page.locator("#save-state").inner_text().startswith("Draft saved")
    db.expire_all()
    assert opinion_for_case(db, case.id).tnm_t == "pT2"

    other.fill("#rationale", "Typed in a stale tab.")
    wait_until(other, "document.getElementById('save-state').dataset.state === 'conflict'")
    assert "another tab" in other.locator("#save-problem").inner_text()
    other.close()
    db.expire_all()
    assert opinion_for_case(db, case.id).rationale == "E-cadherin negative on review."

    page.reload()
    assert page.input_value("#reviewer_diagnosis") == "Invasive lobular carcinoma, grade 2."
    page.fill("#further_tests", "Breast MRI.")  # typed just before signing: saved before the signature
    page.check("#attest")
    page.fill("form.sign #password", PASSWORD)
    page.click("text=Sign opinion and issue letter")
    page.wait_for_url(f"{base}/cases/{case.id}")
    assert "Letter delivered" in page.locator(".head-badges").inner_text()
    logout(page)

    login(page, base, users["referring"].email)
    page.goto(f"{base}/cases/{case.id}/letters")
    with page.expect_download() as download_info:
        page.click("text=Version 1 (PDF)")
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(download_info.value.path()).pages).split())
    for expected in ("Invasive lobular carcinoma, grade 2.", "Diagnosis refined", "Modify plan", "pT2", "Breast MRI.",
                     "Prompt: act within two weeks"):
        assert expected in text, expected
