"""The demo's issued letter with a signed summary for the patient (review_portal.demo_summary)."""
import io

from pypdf import PdfReader

from review_portal.cases.questions import patient_questions_for
from review_portal.demo_summary import QUESTIONS, seed_patient_summary
from review_portal.letters.services import letters_for_case
from review_portal.letters.summary import summaries_for_case
from tests.conftest import NOW, PASSWORD, TURNAROUND


def test_demo_summary_is_signed_answers_the_questions_and_reads_at_grade_8_or_lower(app, db, storage, users):
    seed_patient_summary(app, db, storage, referrer=users["referring"], password=PASSWORD, now=NOW,
                         ctx={"ip": "127.0.0.1", "turnaround_days": TURNAROUND})
    [summary] = [s for s in summaries_for_case(db, s_case_id(db)) if s.is_signed]
    assert patient_questions_for(db, summary.case_id) == list(QUESTIONS)
    assert letters_for_case(db, summary.case_id) and summary.grade <= 8
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(storage.read_verified(summary.blob_key))).pages)
    assert "Will I lose my hair?" in text and "HER2" in text and "Words used in this summary" in text


def s_case_id(db):
    from sqlalchemy import select

    from review_portal.cases.models import Case

    return db.scalar(select(Case.id).where(Case.patient_mrn == "LOC-8812"))
