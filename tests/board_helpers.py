"""A three-discipline case for the multidisciplinary opinion's tests: medical oncology leads (the consensus),
radiology and radiation oncology contribute sections."""
from datetime import timedelta

from review_portal.auth.models import Role
from review_portal.auth.services import create_user
from review_portal.workflow.assignments import accept_offer
from tests.conftest import NOW, PASSWORD, TOTP_SECRET

CTX = {"ip": "127.0.0.1"}
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
