"""The coordinator's and the signer's day in chromium: override routing and extend a deadline, a wrong password
kept on the signing form, preview then sign an addendum with re-authentication, search by patient and MRN."""
from __future__ import annotations

import io

from pypdf import PdfReader

from review_portal.opinions.services import OpinionDraft, save_draft
from tests.browser.test_loop_in_browser import login
from tests.conftest import NOW, PASSWORD

DRAFT = {"diagnosis_concordance": "confirmed", "reviewer_diagnosis": "Invasive ductal carcinoma, grade 2.",
         "rationale": "Morphology and receptors as reported.", "tnm_t": "pT2", "tnm_n": "pN0", "tnm_m": "cM0",
         "plan_concordance": "agree", "recommended_plan": "Proceed as planned.", "urgency": "routine"}


def _pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())


def test_coordinator_overrides_routing_and_extends_the_deadline(app, live_server, page, make_case, users):
    base = live_server
    case = make_case("triage", cancer_site="pediatric")  # nobody matches a pediatric case
    login(page, base, users["coordinator"].email, app)
    page.goto(f"{base}/cases/{case.id}/reassign")
    assert "Override needed: does not cover pediatric" in page.locator("table").inner_text()
    page.select_option("#reviewer_id", str(users["reviewer"].id))
    page.fill("#override_reason", "Adolescent breast case; discussed with the paediatric lead")
    page.click("text=Offer to this reviewer")
    page.wait_for_url(f"{base}/cases/{case.id}")
    assert f"offered to {users['reviewer'].name}" in page.locator("main").inner_text()
    page.goto(f"{base}/cases/{case.id}/reassign")
    page.fill("#business_days", "3")
    page.fill("#reason", "Outside imaging on its way")
    page.click("button:has-text(\"Extend the deadline\")")
    page.wait_for_url(f"{base}/cases/{case.id}")
    assert "now due" in page.locator("main").inner_text()


def test_a_wrong_password_stays_on_the_signing_form(app, live_server, page, db, make_case, users):
    base = live_server
    case = make_case("in_review")
    save_draft(db, case, OpinionDraft(**DRAFT), based_on_version=0, by=users["reviewer"], ip="127.0.0.1", now=NOW)
    db.commit()
    login(page, base, users["reviewer"].email, app)
    page.goto(f"{base}/cases/{case.id}/opinion")
    page.check("#attest")
    page.fill("form.sign #password", "not-my-password")
    page.click("text=Sign opinion and issue letter")
    sign_form = page.locator("#sign-form")
    assert "password is not correct" in sign_form.inner_text()  # beside the field, on the same form
    assert page.input_value("#reviewer_diagnosis") == "Invasive ductal carcinoma, grade 2."  # the draft is there


def test_preview_then_sign_an_addendum_with_reauthentication(app, live_server, page, db, make_case, users):
    base = live_server
    case = make_case("letter_delivered")
    login(page, base, users["reviewer"].email, app)
    page.goto(f"{base}/cases/{case.id}/letters")
    page.fill("#reason", "Receptor status confirmed")
    page.fill("#text", "HER2 IHC 1+, FISH not amplified: the plan stands.")
    assert page.locator("#addendum-form button[formaction$='/opinion/addenda/preview']").is_visible()
    # That button posts the same form to a new tab; the browser's own session fetches what it would show.
    preview = page.context.request.post(f"{base}/cases/{case.id}/opinion/addenda/preview", form={
        "reason": "Receptor status confirmed", "text": "HER2 IHC 1+, FISH not amplified: the plan stands."})
    assert preview.status == 200 and preview.headers["content-type"] == "application/pdf"
    text = _pdf_text(preview.body())
    assert "DRAFT" in text and "FISH not amplified" in text and "Verification code" not in text
    page.check("#addendum-form #attest")
    page.fill("#addendum-form #password", PASSWORD)
    page.click("text=Sign addendum and re-issue the letter")
    page.wait_for_url(f"{base}/cases/{case.id}/letters")
    assert "Version 2 (PDF)" in page.locator("main").inner_text()


def test_search_the_case_list_by_patient_name_and_mrn(app, live_server, page, make_case, users):
    base = live_server
    make_case("assigned", patient_name="Alice Smith", patient_mrn="MRN-100")
    make_case("assigned", patient_name="Bob Jones", patient_mrn="HX-7")
    login(page, base, users["coordinator"].email, app)
    for query in ("smith", "MRN-100"):
        page.fill("#q", query)
        page.press("#q", "Enter")
        page.wait_for_url(lambda url: "q=" in url)
        listing = page.locator("main").inner_text()
        assert "Alice Smith" in listing and "Bob Jones" not in listing, query
