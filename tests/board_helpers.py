"""A three-discipline case for the multidisciplinary opinion's tests: medical oncology leads (the consensus),
radiology and radiation oncology contribute sections."""
from datetime import timedelta

from review_portal.auth.models import Role
from review_portal.auth.services import create_user
from review_portal.opinions.sections import (
    record_position,
    save_section,
    section_of_review,
    sign_section,
)
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.assignments import accept_offer
from review_portal.workflow.signing import sign_and_issue_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD, TOTP_SECRET

CTX = {"ip": "127.0.0.1"}
T1 = NOW + timedelta(hours=1)
DISSENT = "I would not irradiate before the node is sampled: biopsy it first."
RADIOLOGY = {"findings": "22 mm spiculated mass, left breast upper outer quadrant; one 9 mm axillary node.",
             "impression": "Unifocal tumour; the axillary node is not pathological by size.",
             "radpeer_score": "2a", "staging": "cT2 cN0 on imaging"}
RADIATION = {"plan_concordance": "modify", "plan": "Whole-breast radiotherapy 40 Gy in 15 fractions after surgery.",
             "rationale": "Breast-conserving surgery is feasible; hypofractionation is standard (START-B)."}
MEDICAL = {"plan_concordance": "agree", "plan": "Adjuvant endocrine therapy; no chemotherapy on this risk.",
           "rationale": "HR+ HER2- grade 2, node-negative."}


def make_radiation_oncologist(db, users):
    person = create_user(db, email="rad_onc@test.example", name="Rad Onc", password=PASSWORD, role=Role.REVIEWER,
                         now=NOW, institution=users["reviewer"].institution, specialty="radiation_oncology",
                         sites=["breast"], credentials="FRCR")
    if person.mfa_required:  # as the `users` fixture's people: logged in through tests.conftest.login_client
        person.totp_secret, person.totp_enabled_at = TOTP_SECRET, NOW
    db.commit()
    return person


def three_discipline_case(db, make_case, users, status="in_review"):
    """Returns (case, {discipline: review}) with every review accepted by its reviewer."""
    case = make_case(status, disciplines=("medical_oncology", "radiology", "radiation_oncology"), cancer_site="breast")
    reviews = {r.discipline: r for r in case.reviews}
    for review in reviews.values():
        if review.active_assignment is not None and review.active_assignment.is_offered:
            accept_offer(db, review.active_assignment, by=review.reviewer, now=NOW + timedelta(minutes=20), **CTX)
    db.commit()
    return case, reviews


def sign_board(db, storage, make_case, users):
    """Three signed sections (the lead's own medical oncology one too), radiation oncology dissents, radiology
    agrees, the consensus signed: letter version 1."""
    make_radiation_oncologist(db, users)
    case, reviews = three_discipline_case(db, make_case, users)
    for discipline, content, minutes in (("radiology", RADIOLOGY, 10), ("radiation_oncology", RADIATION, 20),
                                         ("medical_oncology", MEDICAL, 30)):
        review = reviews[discipline]
        when = T1 + timedelta(minutes=minutes)
        save_section(db, case, review, content, based_on_version=None, by=review.reviewer, now=when, **CTX)
        sign_section(db, case, review, password=PASSWORD, attested=True, by=review.reviewer, now=when, **CTX)
    lead = reviews["medical_oncology"].reviewer
    record_position(db, case, section_of_review(db, reviews["radiology"].id), position="agree", by=lead, now=T1, **CTX)
    record_position(db, case, section_of_review(db, reviews["radiation_oncology"].id), position="dissent",
                    dissent_text=DISSENT, by=lead, now=T1, **CTX)
    save_draft(db, case, OpinionDraft("confirmed", "modify", "Invasive ductal carcinoma, cT2 cN0.",
                                      "Breast-conserving surgery, then radiotherapy and endocrine therapy.",
                                      "The board's consensus."), based_on_version=None, by=lead, now=T1, **CTX)
    letter = sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                                   by=lead, now=T1 + timedelta(hours=1), **CTX)
    db.commit()
    return case, reviews, letter
