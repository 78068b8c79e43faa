"""A study of another patient in chromium: the reviewer sees the warning beside the scans and cannot sign; the
referrer confirms it is the same patient with a reason on the case page; then the reviewer signs."""
from __future__ import annotations

from review_portal.imaging.identity_services import mismatches_of_case
from review_portal.letters.services import letters_for_case
from review_portal.opinions.services import OpinionDraft, save_draft
from tests.browser.test_loop_in_browser import login
from tests.conftest import NOW, PASSWORD

DRAFT = {"diagnosis_concordance": "confirmed", "reviewer_diagnosis": "Invasive ductal carcinoma, grade 2.",
         "rationale": "Morphology and receptors as reported.", "tnm_t": "pT2", "tnm_n": "pN0", "tnm_m": "cM0",
         "plan_concordance": "agree", "recommended_plan": "Proceed as planned.", "urgency": "routine"}


def _sign(page, base, case_id):
    page.goto(f"{base}/cases/{case_id}/opinion")
    page.check("#attest")
    page.fill("form.sign #password", PASSWORD)
    page.click("text=Sign opinion and issue letter")


def test_a_mismatched_study_blocks_signing_until_the_referrer_resolves_it(app, live_server, browser, page, db,
                                                                          make_case, users):
    base = live_server
    # pydicom's CT_small says CompressedSamples^CT1, ID 1CT1: not the referral's Testy McUX, UX-55501.
    case = make_case("in_review", scans=["CT_small.dcm"], confirm_identity=False, patient_name="Testy McUX",
                     patient_mrn="UX-55501")
    save_draft(db, case, OpinionDraft(**DRAFT), based_on_version=0, by=users["reviewer"], ip="127.0.0.1", now=NOW)
    db.commit()

    login(page, base, users["reviewer"].email, app)
    page.goto(f"{base}/cases/{case.id}/opinion")
    warning = page.locator("#identity-warning")
    assert warning.is_visible()
    text = warning.inner_text()
    names = warning.locator("li[data-field=name]").inner_text()
    ids = warning.locator("li[data-field=id]").inner_text()
    assert "Patient name differs" in names and "Testy McUX" in names and "CompressedSamples, CT1" in names
    assert "Patient ID / MRN differs" in ids and "UX-55501" in ids and "1CT1" in ids
    assert "must resolve this before the opinion can be signed" in text
    _sign(page, base, case.id)
    body = page.locator("body").inner_text()
    assert "patient identity is unresolved" in body and "CompressedSamples, CT1" in body
    assert letters_for_case(db, case.id) == []

    referrer_context = browser.new_context()
    referrer = referrer_context.new_page()
    referrer.set_default_timeout(20000)
    try:
        login(referrer, base, users["referring"].email, app)
        referrer.goto(f"{base}/cases/{case.id}")
        banner = referrer.locator("#identity-warning")
        assert "1CT1" in banner.inner_text()
        banner.locator("input[value=same_patient]").check()
        banner.locator("textarea[name=reason]").fill("Outside hospital's own ID; same patient per their records")
        banner.locator("button:has-text('Record decision')").click()
        referrer.wait_for_url(f"{base}/cases/{case.id}")
        assert "Recorded: the study is this patient" in referrer.locator("main").inner_text()
        assert referrer.locator("#identity-warning").count() == 0
    finally:
        referrer_context.close()
    db.expire_all()
    assert {m.status for m in mismatches_of_case(db, case.id)} == {"same_patient"}

    _sign(page, base, case.id)
    page.wait_for_url(f"{base}/cases/{case.id}")
    assert "Opinion signed" in page.locator("main").inner_text()
    db.expire_all()
    assert len(letters_for_case(db, case.id)) == 1
