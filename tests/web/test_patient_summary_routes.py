"""The summary for the patient through the web: the lead's editor, autosave answering the reading level,
signing with the password, the download beside the letter, acknowledgement, and who may do what."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.letters.summary import latest_summary
from review_portal.letters.summary_models import PatientSummary
from tests.conftest import PASSWORD

QUESTIONS = ("Will I need chemo?", "Can I keep working?")
PLAIN = {
    "what_reviewed": "We looked at your scans and your reports.",
    "conclusion": "The team agrees you have breast cancer. They found one more detail about it.",
    "treatment": "They think you should have chemotherapy before surgery. It can shrink the tumor first.",
    "answers-0": "Yes. The team suggests chemo first.",
    "answers-1": "Many people keep working. Ask your team what fits you.",
}


@pytest.fixture
def delivered(make_case):
    return make_case("letter_delivered", patient_questions=QUESTIONS)


def _start(client, case):
    r = client.post(f"/cases/{case.id}/patient-summary/start")
    assert r.status_code == 302, r.data


def _version(db, case) -> int:
    db.expire_all()
    return latest_summary(db, case.id).version


def test_the_lead_starts_a_prefilled_draft_and_autosave_returns_the_grade(db, delivered, login_as):
    lead = login_as("reviewer")
    page = lead.get(f"/cases/{delivered.id}/patient-summary").get_data(as_text=True)
    assert 'id="start-summary"' in page
    _start(lead, delivered)
    page = lead.get(f"/cases/{delivered.id}/patient-summary").get_data(as_text=True)
    assert "added some details" in page and "Will I need chemo?" in page  # prefilled wording, the questions
    assert 'id="reading-grade"' in page and "Aim for grade 8 or lower" in page
    r = lead.post(f"/cases/{delivered.id}/patient-summary/autosave",
                  data={**PLAIN, "version": str(_version(db, delivered))}, headers={"X-Requested-With": "fetch"})
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert body["grade"] is not None and body["grade"] <= 8 and body["grade_on_target"] is True
    assert "aim for grade 8 or lower" in body["grade_label"] and body["grade_formula"] == "Flesch-Kincaid grade"
    assert body["missing"] == []
    # A harder text: the grade goes up, and the same formula is behind it.
    hard = {**PLAIN, "conclusion": "Notwithstanding considerable histopathological heterogeneity, multidisciplinary "
                                   "deliberation unequivocally substantiated the characterisation.",
            "version": str(body["version"])}
    harder = lead.post(f"/cases/{delivered.id}/patient-summary/autosave", data=hard).get_json()
    assert harder["grade"] > body["grade"] and harder["grade_on_target"] is False
    # A stale page is refused, not merged.
    stale = lead.post(f"/cases/{delivered.id}/patient-summary/autosave", data={**PLAIN, "version": str(body["version"])})
    assert stale.status_code == 409


def test_sign_then_referrer_downloads_with_the_letter_and_acknowledges(db, storage, delivered, users, login_as):
    lead = login_as("reviewer")
    _start(lead, delivered)
    lead.post(f"/cases/{delivered.id}/patient-summary/autosave", data={**PLAIN, "version": str(_version(db, delivered))})
    wrong = lead.post(f"/cases/{delivered.id}/patient-summary/sign", data={"attest": "y", "password": "nope"})
    assert wrong.status_code == 400 and not latest_summary(db, delivered.id).is_signed
    r = lead.post(f"/cases/{delivered.id}/patient-summary/sign", data={"attest": "y", "password": PASSWORD})
    assert r.status_code == 302 and "#patient-summary" in r.headers["Location"]
    db.expire_all()
    summary = latest_summary(db, delivered.id)
    assert summary.is_signed and summary.number == 1

    referrer = login_as("referring")
    versions = referrer.get(f"/cases/{delivered.id}/letters").get_data(as_text=True)
    link = f"/cases/{delivered.id}/patient-summaries/{summary.id}.pdf"
    assert link in versions and 'id="acknowledge-form"' in versions and "and the summary for the patient" in versions
    assert link in referrer.get(f"/cases/{delivered.id}").get_data(as_text=True)
    pdf = referrer.get(link)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    for expected in ("Will I need chemo?", "Yes. The team suggests chemo first.", "chemotherapy", "Medicines that kill",
                     "Words used in this summary"):
        assert expected in text
    db.expire_all()
    assert db.get(PatientSummary, summary.id).first_downloaded_at is not None
    download = db.scalar(select(AuditEvent).where(AuditEvent.action == "patient_summary.downloaded"))
    assert download.actor_id == users["referring"].id and download.case_id == delivered.id

    assert referrer.post(f"/cases/{delivered.id}/acknowledge").status_code == 302
    db.expire_all()
    assert db.get(PatientSummary, summary.id).acknowledged_at is not None

    # Signed is final: saving is refused (409); a change starts version 2.
    assert lead.post(f"/cases/{delivered.id}/patient-summary/autosave", data=PLAIN).status_code == 409
    _start(lead, delivered)
    db.expire_all()
    assert latest_summary(db, delivered.id).number == 2


@pytest.mark.parametrize("role, page, download", [
    ("referring", 403, 200), ("coordinator", 403, 200), ("reviewer", 200, 200),
    ("other_reviewer", 404, 404), ("other_referring", 404, 404),
])
def test_access(db, storage, delivered, users, login_as, role, page, download):
    lead = login_as("reviewer")
    _start(lead, delivered)
    lead.post(f"/cases/{delivered.id}/patient-summary/autosave", data={**PLAIN, "version": str(_version(db, delivered))})
    assert lead.post(f"/cases/{delivered.id}/patient-summary/sign",
                     data={"attest": "y", "password": PASSWORD}).status_code == 302
    summary_id = latest_summary(db, delivered.id).id
    client = login_as(role)
    assert client.get(f"/cases/{delivered.id}/patient-summary").status_code == page
    assert client.get(f"/cases/{delivered.id}/patient-summaries/{summary_id}.pdf").status_code == download
    if role != "reviewer":
        assert client.post(f"/cases/{delivered.id}/patient-summary/start").status_code in (403, 404)
        assert client.post(f"/cases/{delivered.id}/patient-summary/autosave", data=PLAIN).status_code in (403, 404)


def test_before_the_letter_there_is_no_summary(db, make_case, login_as):
    case = make_case("in_review", patient_questions=QUESTIONS)
    assert login_as("reviewer").get(f"/cases/{case.id}/patient-summary").status_code == 403
    assert login_as("reviewer").post(f"/cases/{case.id}/patient-summary/start").status_code == 403


def test_a_draft_is_not_downloadable(db, delivered, login_as):
    lead = login_as("reviewer")
    _start(lead, delivered)
    draft = latest_summary(db, delivered.id)
    assert login_as("referring").get(f"/cases/{delivered.id}/patient-summaries/{draft.id}.pdf").status_code == 404


def test_a_summary_signed_after_the_letter_was_acknowledged_is_acknowledged_on_its_own(db, make_case, login_as):
    case = make_case("acknowledged", patient_questions=QUESTIONS)
    lead = login_as("reviewer")
    _start(lead, case)
    lead.post(f"/cases/{case.id}/patient-summary/autosave", data={**PLAIN, "version": str(_version(db, case))})
    assert lead.post(f"/cases/{case.id}/patient-summary/sign", data={"attest": "y", "password": PASSWORD}).status_code == 302
    summary_id = latest_summary(db, case.id).id
    url = f"/cases/{case.id}/patient-summaries/{summary_id}/acknowledge"
    referrer = login_as("referring")
    page = referrer.get(f"/cases/{case.id}/letters").get_data(as_text=True)
    assert 'id="acknowledge-summary-form"' in page and 'id="acknowledge-form"' not in page
    assert lead.post(url).status_code == 403
    assert login_as("other_referring").post(url).status_code == 404
    assert referrer.post(url).status_code == 302
    assert referrer.post(url).status_code == 409  # once
    db.expire_all()
    assert latest_summary(db, case.id).acknowledged_at is not None
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "patient_summary.acknowledged")) is not None
    assert 'id="acknowledge-summary-form"' not in referrer.get(f"/cases/{case.id}/letters").get_data(as_text=True)
