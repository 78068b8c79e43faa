"""The loop clinicians walk, through the real pages in chromium."""

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from review_portal.cases.models import Case
from tests.conftest import PASSWORD, _allow_code_reuse, testdata, totp_now

pytestmark = pytest.mark.browser


def login(page, base, email, app=None):
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.endswith("/cases") or url.endswith("/login/mfa"))
    if page.url.endswith("/login/mfa"):
        # Reviewers and coordinators have a second factor: type the current TOTP code, as their phone would show.
        if app is not None:
            _allow_code_reuse(app, email)
        page.fill("#code", totp_now())
        page.click("button[type=submit]")
    page.wait_for_url(f"{base}/cases")


def wait_until(page, expression, timeout=20.0):
    """Poll a JS expression with evaluate(); wait_for_function would need 'unsafe-eval', which our CSP forbids."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {expression}")


# The viewer draws the slice on a canvas from the frame's stored values; its data attributes say what is shown.
# Null-safe: it is polled while the page may still be navigating to the viewer.
IMAGE_LOADED = "document.getElementById('slice-image')?.dataset.loaded === '1'"


def logout(page):
    page.click("text=Log out")


def test_referral_review_sign_and_acknowledge_in_the_browser(app, live_server, page, db, users, tmp_path):
    base = live_server
    from weasyprint import HTML

    report = tmp_path / "pathology.pdf"
    HTML(string="<p>Synthetic pathology report</p>").write_pdf(report)

    # 1. The referring oncologist sends a case with a report and scans.
    login(page, base, users["referring"].email)
    page.click("text=New referral")
    page.fill("#patient_name", "Browser Patient")
    page.fill("#patient_dob", "1962-07-08")
    page.select_option("#patient_sex", "male")
    page.fill("#patient_mrn", "BR-7")
    page.select_option("#discipline", "medical_oncology")
    page.select_option("#cancer_site", "thoracic")
    page.select_option("#priority", "urgent")
    page.fill("#question", "Is surgery alone enough?")
    page.fill("#diagnosis_in_question", "NSCLC stage IA.")
    page.fill("#plan_in_question", "Lobectomy.")
    page.fill("#history-0-occurred_on", "2026-09-01")
    page.select_option("#history-0-kind", "imaging")
    page.fill("#history-0-text", "CT chest: RUL nodule.")
    page.set_input_files("#documents", str(report))
    page.set_input_files("#scans", [str(testdata("CT_small.dcm")), str(testdata("MR_small.dcm"))])
    page.click("#submit-referral")
    page.wait_for_url(f"{base}/cases/*")
    assert page.locator("h1").inner_text().endswith("Browser Patient")
    assert "Referral" in page.locator(".flashes").inner_text()
    case = db.scalar(select(Case).where(Case.patient_mrn == "BR-7"))
    assert case.status == "assigned"
    # pydicom's sample files name their own patients: the page warns at once, and the referrer confirms each study.
    while page.locator("#identity-warning input[value=same_patient]").count():
        decision = page.locator("#identity-warning form").first
        decision.locator("input[value=same_patient]").check()
        decision.locator("textarea[name=reason]").fill("Outside imaging site's sample names; same patient")
        decision.locator("button:has-text('Record decision')").click()
        page.wait_for_url(f"{base}/cases/{case.id}")
    logout(page)

    # 2–3. The reviewer finds the offer on the worklist, accepts it, reads the case, scrolls the scans.
    login(page, base, users["reviewer"].email, app)
    page.click(f"text={case.reference}")
    page.click("#accept-offer")
    assert "In review" in page.locator(".head-badges").inner_text()
    assert "CT chest: RUL nodule." in page.locator(".timeline").inner_text()
    thumbs = page.locator(".series-grid img")
    assert thumbs.count() == 2
    wait_until(page, "Array.from(document.querySelectorAll('.series-grid img')).every(i => i.complete && i.naturalWidth > 0)")
    page.locator(".series-grid a").first.click()
    page.wait_for_url("**/series/*")
    wait_until(page, IMAGE_LOADED)
    assert "Slice 1 / 1" in page.locator("#slice-readout").inner_text()
    page.select_option("#preset", label="Lung (-600/1500)")
    wait_until(page, "document.getElementById('slice-image').dataset.window === '-600,1500'")
    wait_until(page, IMAGE_LOADED)
    page.go_back()
    page.go_back()

    # 4. The opinion: draft, then sign.
    page.goto(f"{base}/cases/{case.id}/opinion")
    page.check("input[name=diagnosis_concordance][value=different]")
    page.check("input[name=plan_concordance][value=different]")
    page.fill("#reviewer_diagnosis", "Small cell carcinoma, limited stage.")
    page.fill("#recommended_plan", "Concurrent chemoradiotherapy.")
    page.fill("#rationale", "Morphology and markers favour small cell carcinoma.")
    page.click("text=Save draft")
    assert "Draft saved." in page.locator(".flashes").inner_text()
    page.check("#attest")
    page.fill("form.sign #password", PASSWORD)
    page.click("text=Sign opinion and issue letter")
    page.wait_for_url(f"{base}/cases/{case.id}")
    assert "Letter delivered" in page.locator(".head-badges").inner_text()
    logout(page)

    # 5–6. The referring oncologist downloads the letter and acknowledges it.
    login(page, base, users["referring"].email)
    page.click(f"text={case.reference}")
    with page.expect_download() as download_info:
        page.click("text=Download letter (PDF)")
    pdf_path = download_info.value.path()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(pdf_path).pages).split())
    assert "Browser Patient" in text and "Small cell carcinoma" in text and "Diagnosis different" in text
    page.click("text=Acknowledge receipt")
    assert "Acknowledged" in page.locator(".head-badges").inner_text()
    # Closing is a final step: the disclosure says so, and its button needs the box ticked.
    page.click("#close-step summary")
    assert "This cannot be undone" in page.locator("#close-step").inner_text()
    page.click(f"text=Close case {case.reference} for good")
    assert page.evaluate("document.querySelector('#close-confirm').validity.valueMissing")  # refused unticked
    page.check("#close-confirm")
    page.click(f"text=Close case {case.reference} for good")
    assert "Closed" in page.locator(".head-badges").inner_text()
    db.expire_all()
    assert db.get(Case, case.id).status == "closed"


def test_request_information_answer_and_resume_in_the_browser(app, live_server, page, db, users, make_case):
    base = live_server
    case = make_case("in_review", cancer_site="thoracic")

    # The reviewer asks for specific records: the case goes on hold.
    login(page, base, users["reviewer"].email, app)
    page.goto(f"{base}/cases/{case.id}")
    page.click("text=Request more information")
    page.check("input[name=items][value=pathology_slides]")
    page.check("input[name=items][value=tests]")
    page.fill("#detail", "Please send the biopsy slides and the PD-L1 result.")
    page.click("#request-information")
    assert "Awaiting information" in page.locator(".head-badges").inner_text()
    assert "Please send the biopsy slides" in page.locator("#information-request").inner_text()
    logout(page)

    # The referring physician sees the unread notification, opens it and answers.
    login(page, base, users["referring"].email)
    assert page.locator(".unread-count").inner_text().strip() != ""
    page.click("#notifications-link")
    page.click("text=needs more information")
    page.wait_for_url(f"{base}/cases/{case.id}*")
    assert "Pathology slides or blocks reviewed" in page.locator("#information-request").inner_text()
    page.fill("#answer", "Slides couriered today; PD-L1 TPS 60%.")
    page.click("#send-answer")
    assert "In review" in page.locator(".head-badges").inner_text()
    assert "PD-L1 TPS 60%" in page.locator("#conversation").inner_text()
    logout(page)

    # Back with the reviewer (a second login within the same TOTP step): the review resumed and the answer is in the thread.
    login(page, base, users["reviewer"].email, app)
    page.goto(f"{base}/cases/{case.id}")
    assert "In review" in page.locator(".head-badges").inner_text()
    assert "PD-L1 TPS 60%" in page.locator("#conversation").inner_text()
    assert page.locator("#information-request").count() == 0
    db.expire_all()
    resumed = db.get(Case, case.id)
    assert resumed.status == "in_review" and resumed.hold_started_at is None
