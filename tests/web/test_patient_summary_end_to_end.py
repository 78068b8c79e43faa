"""End to end through the real routes: the patient's questions on the referral → the reviewer sees them → the
letter → the lead's summary for the patient (autosaved with its reading level, signed) → the referrer downloads it
with the letter and acknowledges both → a change is version 2, and version 1 stays as signed."""
import io
import re

from pypdf import PdfReader
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case
from review_portal.letters.summary import latest_summary, summaries_for_case
from tests.conftest import PASSWORD
from tests.web.test_referrals import form


def _text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())


def test_patient_summary_loop(app, db, users, login_as):
    referrer = login_as("referring")
    r = referrer.post("/referrals/new", data={**form(), "patient_questions-0": "Is the cancer in my lymph nodes?",
                                              "patient_questions-1": "Will I need radiotherapy?"})
    assert r.status_code == 302
    case = db.scalar(select(Case).where(Case.patient_mrn == "H-4711"))

    reviewer = login_as("reviewer")
    accept_url = re.search(rf"/cases/{case.id}/assignments/\d+/accept", reviewer.get("/cases").get_data(as_text=True))
    assert reviewer.post(accept_url.group(0)).status_code == 302
    opinion_page = reviewer.get(f"/cases/{case.id}/opinion").get_data(as_text=True)
    assert "Is the cancer in my lymph nodes?" in opinion_page and "Will I need radiotherapy?" in opinion_page
    draft = {"diagnosis_concordance": "confirmed", "plan_concordance": "different", "version": "",
             "reviewer_diagnosis": "Left breast IDC, cT2N1.", "recommended_plan": "Neoadjuvant chemotherapy first.",
             "rationale": "Node-positive disease."}
    assert reviewer.post(f"/cases/{case.id}/opinion", data=draft).status_code == 302
    assert reviewer.post(f"/cases/{case.id}/opinion/sign", data={"attest": "y", "password": PASSWORD}).status_code == 302

    # Only after the letter: the lead opens the summary, prefilled from the opinion's categories.
    assert reviewer.post(f"/cases/{case.id}/patient-summary/start").status_code == 302
    editor = reviewer.get(f"/cases/{case.id}/patient-summary").get_data(as_text=True)
    assert "agree with the diagnosis your doctors made" in editor and "suggest a different treatment plan" in editor
    db.expire_all()
    words = {"what_reviewed": "A specialist looked at your records again.",
             "conclusion": "She agrees with your diagnosis. The cancer has spread to a lymph node under the arm.",
             "treatment": "She suggests chemotherapy first, then surgery. Talk with your doctor about it.",
             "answers-0": "Yes. One lymph node shows cancer.",
             "answers-1": "Maybe. Your team will decide after surgery.",
             "version": str(latest_summary(db, case.id).version)}
    saved = reviewer.post(f"/cases/{case.id}/patient-summary/autosave", data=words).get_json()
    assert saved["grade"] <= 8 and "grade" in saved["grade_label"]
    signed = reviewer.post(f"/cases/{case.id}/patient-summary/sign",
                           data={"attest": "y", "password": PASSWORD, "version": str(saved["version"])})
    assert signed.status_code == 302

    # The referrer: the summary beside the letter, downloaded and acknowledged with it.
    case_page = referrer.get(f"/cases/{case.id}").get_data(as_text=True)
    v1_url = re.search(rf"/cases/{case.id}/patient-summaries/\d+\.pdf", case_page).group(0)
    v1 = referrer.get(v1_url)
    text = _text(v1.data)
    for expected in ("Summary for the patient", "Is the cancer in my lymph nodes?", "Yes. One lymph node shows cancer.",
                     "Maybe. Your team will decide after surgery.", "lymph node", "A small bean-shaped gland",
                     "chemotherapy", "radiotherapy", "High-energy rays".lower()[:4]):
        assert expected in text, expected
    assert referrer.post(f"/cases/{case.id}/acknowledge").status_code == 302
    db.expire_all()
    assert db.get(Case, case.id).status == "acknowledged" and latest_summary(db, case.id).acknowledged_at is not None

    # A change after signing: version 2; version 1 is kept as signed, byte for byte.
    assert reviewer.post(f"/cases/{case.id}/patient-summary/start").status_code == 302
    db.expire_all()
    second = latest_summary(db, case.id)
    assert (second.number, second.status, second.answers[0]["answer"]) == (2, "draft", "Yes. One lymph node shows cancer.")
    saved = reviewer.post(f"/cases/{case.id}/patient-summary/autosave",
                          data={**words, "answers-1": "No. Your team does not plan it now.",
                                "version": str(second.version)}).get_json()
    assert reviewer.post(f"/cases/{case.id}/patient-summary/sign",
                         data={"attest": "y", "password": PASSWORD, "version": str(saved["version"])}).status_code == 302
    versions = referrer.get(f"/cases/{case.id}/letters").get_data(as_text=True)
    assert "Summary for the patient, version 2 (PDF)" in versions and "Summary for the patient, version 1 (PDF)" in versions
    assert referrer.get(v1_url).data == v1.data
    db.expire_all()
    v2 = summaries_for_case(db, case.id)[0]
    assert "No. Your team does not plan it now." in _text(referrer.get(f"/cases/{case.id}/patient-summaries/{v2.id}.pdf").data)

    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)))
    assert {"patient_summary.started", "patient_summary.draft_saved", "patient_summary.signed",
            "patient_summary.downloaded"} <= actions
