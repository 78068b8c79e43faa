"""Demo data: one issued letter with a signed summary for the patient, answering the patient's own questions.

Seeded by `demo.seed` (one call). The lead (Dr Ada Stone, reviewer@demo.example) sees the summary's editor at
/cases/<id>/patient-summary; the referrer (Dr Jane Roe, referrer@demo.example) downloads it with the letter.
"""
from __future__ import annotations

from datetime import date, timedelta

from review_portal.cases.services import HistoryItem, Referral
from review_portal.letters.summary import SummaryDraft, save_summary, sign_summary, start_summary
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.assignments import accept_offer
from review_portal.workflow.referrals import submit_referral
from review_portal.workflow.signing import sign_and_issue_letter

QUESTIONS = ("Do I really need chemotherapy before the operation?",
             "Will I lose my hair?",
             "Can I keep working while I am treated?")
SUMMARY = SummaryDraft(
    what_reviewed="A breast cancer specialist looked again at your records. She read the biopsy report and the "
                  "notes from your doctor.",
    conclusion="The specialist agrees that you have breast cancer. She agrees with the type of cancer and its grade. "
               "She thinks one more test is needed on the biopsy. It shows if the cancer has a lot of a protein called "
               "HER2.",
    treatment="If the test shows a lot of HER2, she suggests chemotherapy with two extra medicines that target HER2. "
              "You would have this before surgery. If the test does not show a lot of HER2, the plan stays the same. "
              "Please talk about this with your doctor before you change anything.",
    answers=(("Most likely yes. Medicine before the operation can shrink the tumor and makes the operation easier. "
              "Your doctor will tell you once the test is back."),
             ("Many people lose their hair with this kind of chemotherapy. It grows back after treatment ends. "
              "Ask your team about ways to cope."),
             ("Many people keep working, often with fewer hours. It depends on how you feel. Talk to your team and "
              "your employer.")),
)


def seed_patient_summary(app, db, storage, *, referrer, password: str, now, ctx: dict) -> None:
    """A breast case, its letter issued two days ago, and version 1 of its summary for the patient signed."""
    referral = Referral(
        patient_name="Ines Plainword", patient_dob=date(1975, 7, 14), patient_sex="female", patient_mrn="LOC-8812",
        question="Should she have neoadjuvant chemotherapy, and is HER2 status settled?",
        diagnosis_in_question="Invasive breast carcinoma NST, grade 2, ER+, HER2 2+ (equivocal), cT2N0.",
        plan_in_question="Neoadjuvant chemotherapy, then breast-conserving surgery.",
        disciplines=("medical_oncology",), cancer_site="breast", priority="routine",
        history=[HistoryItem(date(2026, 10, 8), "pathology", "Core biopsy: IDC grade 2, ER 95%, HER2 IHC 2+.")],
        patient_questions=QUESTIONS,
    )
    case, _ = submit_referral(db, storage, referral, documents=[], scans=[], by=referrer, now=now - timedelta(days=8),
                              **ctx)
    lead, ip = case.reviewer, ctx["ip"]
    accept_offer(db, case.active_assignment, by=lead, ip=ip, now=now - timedelta(days=7))
    save_draft(db, case, OpinionDraft(
        diagnosis_concordance="confirmed", plan_concordance="modify",
        reviewer_diagnosis="Invasive carcinoma NST, grade 2, ER+; HER2 equivocal by IHC.",
        recommended_plan="HER2 ISH first. If amplified: neoadjuvant chemotherapy with trastuzumab and pertuzumab.",
        rationale="IHC 2+ must be resolved by ISH before systemic therapy is chosen.",
        further_tests="HER2 in situ hybridisation."), based_on_version=None, by=lead, ip=ip, now=now - timedelta(days=4))
    sign_and_issue_letter(db, storage, case, password=password,
                          attested=True, institution=app.config["INSTITUTION"], by=lead, ip=ip,
                          now=now - timedelta(days=3))
    at = now - timedelta(days=2)
    start_summary(db, case, by=lead, ip=ip, now=at)
    save_summary(db, case, SUMMARY, based_on_version=None, by=lead, ip=ip, now=at)
    sign_summary(db, storage, case, password=password, attested=True, based_on_version=None,
                 institution=app.config["INSTITUTION"], by=lead, ip=ip, now=at + timedelta(minutes=20))

