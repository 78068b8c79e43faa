"""Disciplines: the referrer names what the question needs, routing matches it before site and load,
and the administrator keeps the list (added, renamed, deactivated, audited)."""
import pytest
from sqlalchemy import select

from review_portal.assignment.models import ReviewerProfile
from review_portal.assignment.routing import choose_reviewer
from review_portal.audit.models import AuditEvent
from review_portal.auth.models import Role
from review_portal.auth.services import create_user
from review_portal.cases.disciplines import (
    active_disciplines,
    add_discipline,
    rename_discipline,
    set_discipline_active,
)
from review_portal.cases.models import Discipline
from review_portal.errors import InvalidInput, PermissionDenied
from tests.conftest import NOW, PASSWORD

CTX = {"ip": "127.0.0.1", "now": NOW}
BREAST_CDK46 = {"cancer_site": "breast",
                "question": "Adjuvant abemaciclib with endocrine therapy for this HR+ node-positive breast cancer "
                            "after radiotherapy?",
                "plan_in_question": "Endocrine therapy with a CDK4/6 inhibitor for two years."}


@pytest.fixture
def specialists(db, users):
    """One breast reviewer of each further discipline, at the reviewing centre (users has the medical
    oncologist `reviewer` and the breast `radiologist`)."""
    def make(key, specialty):
        return create_user(db, email=f"{key}@test.example", name=key.replace("_", " ").title(), password=PASSWORD,
                           role=Role.REVIEWER, now=NOW, institution=users["reviewer"].institution,
                           specialty=specialty, sites=["breast"])
    people = {"radiation": make("rad_onc", "radiation_oncology"), "surgical": make("surg_onc", "surgical_oncology"),
              "pathologist": make("pathologist", "pathology")}
    db.commit()
    return people


def _discipline(db, key) -> Discipline:
    return db.scalar(select(Discipline).where(Discipline.key == key))


def test_the_breast_systemic_question_goes_to_the_medical_oncologist_despite_a_lighter_radiation_oncologist(
        db, make_case, users, specialists):
    make_case("assigned", cancer_site="breast")  # the medical oncologist now holds one open review
    case = make_case("assigned", disciplines=("medical_oncology",), **BREAST_CDK46)
    assert case.reviewer.id == users["reviewer"].id
    assert case.discipline == "medical_oncology" and case.lead_review.discipline == "medical_oncology"
    assert case.review_type == "oncology_opinion"
    # What happened before disciplines: the review type alone admits every oncologist, and the lighter one won.
    review = case.lead_review
    review.discipline = None
    assert choose_reviewer(db, review, NOW).reviewer.id == specialists["radiation"].id


@pytest.mark.parametrize("discipline, who, review_type", [
    ("medical_oncology", "reviewer", "oncology_opinion"),
    ("radiation_oncology", "radiation", "oncology_opinion"),
    ("surgical_oncology", "surgical", "oncology_opinion"),
    ("radiology", "radiologist", "radiology_read"),
    ("pathology", "pathologist", "pathology_review"),
])
def test_each_discipline_is_routed_to_its_own_specialty(make_case, users, specialists, discipline, who, review_type):
    case = make_case("assigned", disciplines=(discipline,), cancer_site="breast")
    expected = specialists.get(who) or users[who]
    assert case.reviewer.id == expected.id
    assert case.review_type == review_type and case.lead_review.review_type == review_type


def test_radiology_still_needs_the_reading_area(db, make_case, users):
    db.get(ReviewerProfile, users["radiologist"].id).reading_areas = ["chest"]
    db.commit()
    case = make_case("triage", disciplines=("radiology",), cancer_site="breast")
    assert "Radiologist: reading areas do not include this site's imaging" in case.lead_review.triage_reason


def test_a_discipline_nobody_practises_goes_to_triage_and_says_so(make_case, users):
    case = make_case("triage", disciplines=("surgical_oncology",), cancer_site="breast")
    reason = case.lead_review.triage_reason
    assert reason.startswith("No eligible reviewer for a surgical oncology review of a breast case.")
    assert "Reviewer: specialty (Medical oncology) does not match a surgical oncology review" in reason


def test_further_disciplines_become_contributing_reviews(db, make_case, users, specialists):
    case = make_case("assigned", disciplines=("medical_oncology", "radiology", "radiation_oncology"), cancer_site="breast")
    reviews = sorted(case.reviews, key=lambda r: r.id)
    assert [(r.discipline, r.is_lead, r.reviewer.id) for r in reviews] == [
        ("medical_oncology", True, users["reviewer"].id),
        ("radiology", False, users["radiologist"].id),
        ("radiation_oncology", False, specialists["radiation"].id),
    ]
    assert reviews[1].review_type == "radiology_read" and reviews[1].due_at == case.due_at
    added = db.scalars(select(AuditEvent.detail).where(AuditEvent.action == "review.added",
                                                       AuditEvent.case_id == case.id)).all()
    assert sorted(d.rsplit("; ", 1)[-1] for d in added) == ["discipline=radiation_oncology", "discipline=radiology"]


def test_the_discipline_must_be_named_and_offered(db, make_case, users):
    with pytest.raises(InvalidInput, match="Choose the discipline"):
        make_case("assigned", disciplines=())  # an oncology opinion, but which oncology: never guessed
    with pytest.raises(InvalidInput, match="Not a discipline we offer: psychiatry"):
        make_case("assigned", disciplines=("psychiatry",))
    set_discipline_active(db, _discipline(db, "radiation_oncology").id, active=False, by=users["admin"], **CTX)
    with pytest.raises(InvalidInput, match="Not a discipline we offer: radiation_oncology"):
        make_case("assigned", disciplines=("medical_oncology", "radiation_oncology"))
    with pytest.raises(InvalidInput, match="does not fit"):
        make_case("assigned", disciplines=("radiology",), review_type="oncology_opinion")


def test_admin_adds_renames_and_deactivates_with_audit(db, make_case, users):
    admin = users["admin"]
    added = add_discipline(db, key="neuro_oncology", label="Neuro-oncology", specialty="medical_oncology", by=admin, **CTX)
    rename_discipline(db, added.id, label="  Neuro   oncology ", by=admin, **CTX)
    assert added.label == "Neuro oncology"
    case = make_case("assigned", disciplines=("neuro_oncology",), cancer_site="breast")
    assert case.reviewer.id == users["reviewer"].id  # routed by the specialty the new discipline needs
    set_discipline_active(db, added.id, active=False, by=admin, **CTX)
    assert "neuro_oncology" not in [d.key for d in active_disciplines(db)]
    assert _discipline(db, "neuro_oncology").active is False and case.discipline == "neuro_oncology"  # kept
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "discipline",
                                                         AuditEvent.actor_id == admin.id)).all()
    assert sorted(actions) == ["discipline.added", "discipline.deactivated", "discipline.renamed"]
    with pytest.raises(InvalidInput, match="exists already"):
        add_discipline(db, key="neuro_oncology", label="Again", specialty="radiology", by=admin, **CTX)
    with pytest.raises(InvalidInput, match="specialty"):
        add_discipline(db, key="psycho_oncology", label="Psycho-oncology", specialty="psychiatry", by=admin, **CTX)


@pytest.mark.parametrize("role", ["coordinator", "reviewer", "referring"])
def test_only_an_administrator_changes_disciplines(db, users, role):
    medical = _discipline(db, "medical_oncology")
    with pytest.raises(PermissionDenied):
        add_discipline(db, key="x_ray", label="X", specialty="radiology", by=users[role], **CTX)
    with pytest.raises(PermissionDenied):
        rename_discipline(db, medical.id, label="Systemic therapy", by=users[role], **CTX)
    with pytest.raises(PermissionDenied):
        set_discipline_active(db, medical.id, active=False, by=users[role], **CTX)
    assert medical.label == "Medical oncology" and medical.active
