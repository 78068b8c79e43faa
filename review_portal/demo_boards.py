"""Demo data for the multidisciplinary opinion: three breast cases asked of medical oncology, radiology and
radiation oncology, one at each main stage (sections in progress, awaiting consensus, letter issued).

Dr Ada Stone (reviewer@demo.example) leads and chairs them; Dr Tomas Okafor (radiologist@demo.example) and
Dr Maria Lindqvist (lindqvist@demo.example) write the sections; the coordinator sees them all on /board.
"""
from __future__ import annotations

from datetime import date, timedelta

from review_portal.imaging.identity_services import confirm_same_patient, open_mismatches
from review_portal.cases.services import HistoryItem, Referral
from review_portal.opinions.sections import (
    record_position,
    save_section,
    section_of_review,
    sign_section,
)
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.assignments import accept_offer
from review_portal.workflow.referrals import submit_referral
from review_portal.workflow.signing import sign_and_issue_letter

IP = "127.0.0.1"
RADIOLOGY = {"findings": "Left breast 9 o'clock: 24 mm irregular mass; one 11 mm level I axillary node with a thickened "
                         "cortex.", "impression": "Unifocal cancer; the axillary node is suspicious and should be sampled.",
             "radpeer_score": "2b", "radpeer_comment": "The original report called the node reactive; its cortex is 4 mm.",
             "staging": "cT2 cN1 (imaging)"}
RADIATION = {"plan_concordance": "modify", "plan": "Breast and regional nodal irradiation after surgery if the node is "
                                                   "positive.", "rationale": "Nodal disease changes the fields."}
MEDICAL = {"plan_concordance": "modify", "plan": "Ultrasound-guided node biopsy first; neoadjuvant therapy if positive.",
           "rationale": "A positive node makes neoadjuvant systemic therapy the better first step."}


def _referral(name: str, mrn: str, born: date) -> Referral:
    return Referral(
        patient_name=name, patient_dob=born, patient_sex="female", patient_mrn=mrn,
        question="Tumor board: do you agree with surgery first, and what adjuvant treatment follows?",
        diagnosis_in_question="Invasive breast carcinoma NST, grade 2, ER+ HER2-, cT2N0.",
        plan_in_question="Breast-conserving surgery and sentinel node biopsy, then adjuvant endocrine therapy.",
        disciplines=("medical_oncology", "radiology", "radiation_oncology"), cancer_site="breast", priority="routine",
        history=[HistoryItem(date(2026, 10, 12), "pathology", "Core biopsy: IDC grade 2, ER 95%, PR 60%, HER2 1+.")])


def _write(db, case, discipline: str, content: dict, *, sign: bool, password: str, now) -> None:
    review = next(r for r in case.reviews if r.discipline == discipline)
    save_section(db, case, review, content, based_on_version=None, by=review.reviewer, ip=IP, now=now)
    if sign:
        sign_section(db, case, review, password=password, attested=True, by=review.reviewer, ip=IP, now=now)


def seed_boards(app, db, storage, *, referrer, scans, now, ctx: dict, password: str) -> list:
    """Three multidisciplinary cases; returns them, earliest stage first."""
    cases = []
    for n, (name, mrn) in enumerate((("Ines Boardwell", "RGH-200101"), ("Jo Consensus", "RGH-200102"),
                                     ("Kay Sections", "RGH-200103"))):
        start = now - timedelta(days=4 - n)
        case, _ = submit_referral(db, storage, _referral(name, mrn, date(1966 + n, 3, 14)), documents=[],
                                  scans=scans, by=referrer, now=start, **ctx)
        # The demo scan carries a placeholder name: its referrer confirms it is this patient's (imaging.identity).
        for study_id in sorted({m.study_id for m in open_mismatches(db, case.id)}):
            confirm_same_patient(db, case, study_id, reason="Demo scan with a placeholder name (synthetic data)",
                                 by=referrer, ip=IP, now=start)
        for review in case.reviews:
            if review.active_assignment is not None:
                accept_offer(db, review.active_assignment, by=review.reviewer, ip=IP, now=start + timedelta(hours=1))
        cases.append(case)
    in_progress, awaiting, issued = cases
    # 1) Sections in progress: the radiologist's draft; radiation oncology not started.
    _write(db, in_progress, "radiology", {"findings": RADIOLOGY["findings"]}, sign=False, password=password,
           now=now - timedelta(hours=5))
    # 2) Awaiting consensus: both contributing sections signed; the chair has yet to record positions and sign.
    for discipline, content in (("radiology", RADIOLOGY), ("radiation_oncology", RADIATION)):
        _write(db, awaiting, discipline, content, sign=True, password=password, now=now - timedelta(hours=3))
    # 3) Letter issued: every section signed, radiation oncology dissents in her own words, the consensus signed.
    for discipline, content in (("radiology", RADIOLOGY), ("radiation_oncology", RADIATION),
                                ("medical_oncology", MEDICAL)):
        _write(db, issued, discipline, content, sign=True, password=password, now=now - timedelta(days=1))
    lead = issued.lead_review.reviewer
    reviews = {r.discipline: r for r in issued.reviews}
    record_position(db, issued, section_of_review(db, reviews["radiology"].id), position="agree", by=lead, ip=IP,
                    now=now - timedelta(hours=20))
    record_position(db, issued, section_of_review(db, reviews["radiation_oncology"].id), position="dissent",
                    dissent_text="I would irradiate the regional nodes whatever the biopsy shows: the imaging is "
                                 "convincing.", by=lead, ip=IP, now=now - timedelta(hours=20))
    save_draft(db, issued, OpinionDraft(
        diagnosis_concordance="refined", plan_concordance="modify",
        reviewer_diagnosis="Invasive carcinoma NST, grade 2, ER+ HER2-, cT2 with a suspicious axillary node (cN1?).",
        recommended_plan="Ultrasound-guided biopsy of the axillary node. If positive: neoadjuvant systemic therapy, "
                         "surgery, then breast and regional nodal irradiation. If negative: proceed as planned.",
        rationale="The board's consensus: the node decides the sequence."),
        based_on_version=None, by=lead, ip=IP, now=now - timedelta(hours=19))
    sign_and_issue_letter(db, storage, issued, password=password, attested=True, institution=app.config["INSTITUTION"],
                          by=lead, ip=IP, now=now - timedelta(hours=18))
    return cases
