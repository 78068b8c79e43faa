"""The whole loop through the real routes: referral → routing → offer accepted → review → signed letter →
receipt → follow-up question answered → closed."""
import io
import re

from pypdf import PdfReader
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case
from tests.conftest import PASSWORD, testdata


def _pdf_bytes() -> bytes:
    from weasyprint import HTML

    return HTML(string="<h1>Pathology report</h1><p>Synthetic.</p>").write_pdf()


def test_whole_second_opinion_loop(app, db, users, login_as):
    referrer = login_as("referring")
    form = {
        "patient_name": "Wilma Loop", "patient_dob": "1959-05-06", "patient_sex": "female", "patient_mrn": "E2E-42",
        "discipline": "medical_oncology", "cancer_site": "thoracic", "priority": "urgent",
        "question": "Is lobectomy alone adequate?", "diagnosis_in_question": "Adenocarcinoma RUL, stage IA2.",
        "plan_in_question": "Lobectomy, no adjuvant therapy.",
        "history-0-occurred_on": "2026-10-01", "history-0-kind": "imaging", "history-0-text": "CT: 14 mm nodule.",
        "history-1-occurred_on": "2026-10-09", "history-1-kind": "pathology", "history-1-text": "Biopsy: adenocarcinoma.",
        "documents": [(io.BytesIO(_pdf_bytes()), "pathology.pdf")],
        "scans": [(open(testdata("CT_small.dcm"), "rb"), "ct.dcm"), (open(testdata("MR_small.dcm"), "rb"), "mr.dcm"),
                  (io.BytesIO(b"not dicom at all"), "notes.txt")],
    }
    response = referrer.post("/referrals/new", data=form, content_type="multipart/form-data")
    assert response.status_code == 302
    case = db.scalar(select(Case).where(Case.patient_mrn == "E2E-42"))
    assert case.status == "assigned"
    assert case.reviewer.id == users["reviewer"].id  # the only thoracic medical oncologist
    page = referrer.get(response.headers["Location"]).get_data(as_text=True)
    assert "notes.txt" in page and "Wilma Loop" in page
    # pydicom's sample files name their own patients: the referrer is warned, and confirms the studies are Wilma's.
    assert "patient name" in page.lower()
    from review_portal.imaging.models import Study
    for study_id in db.scalars(select(Study.id).where(Study.case_id == case.id)):
        answer = referrer.post(f"/cases/{case.id}/studies/{study_id}/identity",
                               data={"decision": "same_patient", "reason": "Outside imaging site's test names"})
        assert answer.status_code in (302, 303)

    reviewer = login_as("reviewer")
    worklist = reviewer.get("/cases").get_data(as_text=True)
    assert case.reference in worklist and "Urgent" in worklist
    # The routed case is an offer: one click on the worklist accepts it.
    accept_url = re.search(rf"/cases/{case.id}/assignments/\d+/accept", worklist).group(0)
    assert reviewer.post(accept_url).status_code == 302
    db.expire_all()
    assert db.get(Case, case.id).status == "in_review" and db.get(Case, case.id).fhir_status == "in-progress"
    detail = reviewer.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "CT: 14 mm nodule." in detail and "pathology.pdf" in detail
    series_ids = sorted(set(int(s) for s in re.findall(rf"/cases/{case.id}/series/(\d+)\"", detail)))
    assert len(series_ids) == 2
    viewer = reviewer.get(f"/cases/{case.id}/series/{series_ids[0]}")
    assert viewer.status_code == 200
    image = reviewer.get(f"/cases/{case.id}/series/{series_ids[0]}/slices/0.png?wc=40&ww=400")
    assert image.status_code == 200 and image.data.startswith(b"\x89PNG")

    draft = {"diagnosis_concordance": "refined", "plan_concordance": "modify", "version": "",
             "reviewer_diagnosis": "Adenocarcinoma with a second ground-glass focus: stage IB.",
             "recommended_plan": "Lobectomy; discuss adjuvant osimertinib if EGFR mutated.",
             "rationale": "The second focus changes the stage.", "further_tests": "EGFR mutation testing."}
    assert reviewer.post(f"/cases/{case.id}/opinion", data=draft).status_code == 302
    db.expire_all()
    assert db.get(Case, case.id).status == "in_review"
    signed = reviewer.post(f"/cases/{case.id}/opinion/sign", data={"attest": "y", "password": PASSWORD})
    assert signed.status_code == 302
    db.expire_all()
    assert db.get(Case, case.id).status == "letter_delivered"
    # Signed means frozen: the opinion page is no longer editable.
    assert reviewer.post(f"/cases/{case.id}/opinion", data=draft | {"rationale": "changed"}).status_code == 403

    referrer_page = referrer.get(f"/cases/{case.id}").get_data(as_text=True)
    letter_url = re.search(rf"/cases/{case.id}/letters/\d+\.pdf", referrer_page).group(0)
    pdf = referrer.get(letter_url)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    flat = " ".join(text.split())
    for expected in ("Wilma Loop", case.reference, "Reviewer", "stage IB", "Diagnosis refined", "Modify plan",
                     "EGFR mutation testing", "Is lobectomy alone adequate?"):
        assert expected in flat, expected

    assert referrer.post(f"/cases/{case.id}/acknowledge").status_code == 302
    db.expire_all()
    assert db.get(Case, case.id).status == "acknowledged"

    # A follow-up question after the letter, answered by the reviewer who signed.
    assert referrer.post(f"/cases/{case.id}/follow-ups", data={"question": "Would you test for ALK too?"}).status_code == 302
    page = reviewer.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Would you test for ALK too?" in page
    answer_url = re.search(rf"/cases/{case.id}/follow-ups/\d+/answer", page).group(0)
    # Like every signature, the answer needs the attestation and the password; the preview comes first.
    preview = reviewer.post(f"/cases/{case.id}/opinion/addenda/preview",
                            data={"answer": "Yes: ALK and ROS1 by NGS.", "reason": "Answer to follow-up question 1"})
    assert preview.status_code == 200 and preview.data[:4] == b"%PDF"
    preview_text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(preview.data)).pages)
    assert "DRAFT" in preview_text and "ALK and ROS1 by NGS" in preview_text
    assert reviewer.post(answer_url, data={"answer": "Yes: ALK and ROS1 by NGS."}).status_code == 400
    assert reviewer.post(answer_url, data={"answer": "Yes: ALK and ROS1 by NGS.", "attest": "y",
                                           "password": PASSWORD}).status_code == 302
    assert "ALK and ROS1 by NGS" in referrer.get(f"/cases/{case.id}").get_data(as_text=True)
    # The answer is a signed addendum: letter version 2 carries it and awaits acknowledgement again.
    db.expire_all()
    assert db.get(Case, case.id).status == "letter_delivered"
    versions = referrer.get(f"/cases/{case.id}/letters").get_data(as_text=True)
    v2_url = re.findall(rf"/cases/{case.id}/letters/\d+\.pdf", versions)
    v2 = max(v2_url, key=lambda u: int(re.search(r"/letters/(\d+)\.pdf", u).group(1)))
    v2_text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(referrer.get(v2).data)).pages).split())
    assert "ALK and ROS1 by NGS" in v2_text and "stage IB" in v2_text
    assert referrer.post(f"/cases/{case.id}/acknowledge").status_code == 302

    assert referrer.post(f"/cases/{case.id}/close", data={"confirm": "yes"}).status_code == 302
    db.expire_all()
    assert db.get(Case, case.id).status == "closed"
    assert "Closed" in referrer.get(f"/cases/{case.id}").get_data(as_text=True)

    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)))
    assert {"case.submitted", "scans.ingested", "case.assigned", "assignment.accepted", "case.status_changed",
            "case.viewed", "series.viewed", "opinion.draft_saved", "opinion.signed", "letter.issued",
            "letter.downloaded", "letter.acknowledged", "follow_up.asked", "follow_up.answered"} <= actions
    moves = list(db.scalars(select(AuditEvent.detail).where(AuditEvent.case_id == case.id,
                                                            AuditEvent.action == "case.status_changed")
                            .order_by(AuditEvent.id)))
    assert [m.split(" (")[0] for m in moves] == [
        "submitted → assigned", "assigned → in_review", "in_review → opinion_signed",
        "opinion_signed → letter_delivered", "letter_delivered → acknowledged", "acknowledged → letter_delivered",
        "letter_delivered → acknowledged", "acknowledged → closed"]
