"""Each routing rule, the offer/decline/re-route cycle, and several reviews per case."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from review_portal.deadlines import SlaPolicy
from review_portal.assignment.models import OutOfOffice, ReviewerProfile
from review_portal.workflow.assignments import accept_offer, add_review, complete_contributing_review, decline_offer, reassign_case, release_letter
from review_portal.assignment.routing import choose_reviewer, hard_ineligibility
from review_portal.audit.models import AuditEvent
from review_portal.auth.models import Role
from review_portal.auth.services import create_user
from review_portal.cases.permissions import can_view_case
from review_portal.errors import IllegalTransition, InvalidInput, PermissionDenied
from review_portal.notifications.models import Notification
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.signing import sign_and_issue_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD, TURNAROUND

CTX = {"ip": "127.0.0.1"}
POLICY = SlaPolicy(TURNAROUND)


@pytest.fixture
def thoracic_colleague(db, users):
    """A second thoracic medical oncologist at the reviewing centre (joined after `reviewer`: higher id)."""
    user = create_user(db, email="colleague@test.example", name="Colleague", password=PASSWORD, role=Role.REVIEWER,
                       now=NOW, institution=users["reviewer"].institution, specialty="medical_oncology",
                       sites=["thoracic", "breast"])
    db.commit()
    return user


def test_specialty_decides_who_reads_what(make_case, users):
    opinion = make_case("assigned", cancer_site="thoracic")
    read = make_case("assigned", cancer_site="thoracic", review_type="radiology_read")
    assert opinion.reviewer.id == users["reviewer"].id
    assert read.reviewer.id == users["radiologist"].id


def test_site_must_be_covered(make_case, users):
    assert make_case("assigned", cancer_site="gi").reviewer.id == users["other_reviewer"].id


def test_radiologists_need_the_reading_area_for_the_site(db, users, make_case):
    body_reader = create_user(db, email="body@test.example", name="Body Reader", password=PASSWORD, role=Role.REVIEWER,
                              now=NOW, institution=users["reviewer"].institution, specialty="radiology", sites=["gi"])
    db.add(ReviewerProfile(user_id=body_reader.id, reading_areas=["chest"]))
    db.commit()
    case = make_case("triage", cancer_site="gi", review_type="radiology_read")
    assert "Body Reader: reading areas do not include this site's imaging" in case.lead_review.triage_reason
    db.get(ReviewerProfile, body_reader.id).reading_areas = ["body"]
    db.commit()
    assert make_case("assigned", cancer_site="gi", review_type="radiology_read").reviewer.id == body_reader.id


def test_conflict_of_interest_excludes_the_referring_institution_and_physician(db, users, make_case):
    make_case("assigned", cancer_site="thoracic")  # the reviewer now carries one open case
    insider = create_user(db, email="insider@test.example", name="Insider", password=PASSWORD, role=Role.REVIEWER,
                          now=NOW, institution=users["referring"].institution, specialty="medical_oncology",
                          sites=["thoracic"])
    db.commit()
    case = make_case("assigned", cancer_site="thoracic")
    # The insider has the lower load, but works where the case comes from.
    assert case.reviewer.id == users["reviewer"].id
    assert hard_ineligibility(insider, case, "oncology_opinion", None) == \
        "works at the referring institution (conflict of interest)"
    case.referring_id = users["reviewer"].id  # the same person on both sides
    assert hard_ineligibility(users["reviewer"], case, "oncology_opinion", None) == "is the referring physician"
    db.rollback()


def test_lowest_load_wins_and_the_reason_says_why(make_case, users, thoracic_colleague):
    first = make_case("assigned", cancer_site="thoracic")
    assert first.reviewer.id == users["reviewer"].id  # tie at zero: the longest-standing account
    assert "tie with Colleague broken by the longest-standing account" in first.active_assignment.reason
    second = make_case("assigned", cancer_site="thoracic")
    assert second.reviewer.id == thoracic_colleague.id
    reason = second.active_assignment.reason
    assert reason.startswith("Automatic: Medical oncology, covers thoracic, lowest load (0 open of 8) among 2 eligible")
    assert "Reviewer 1" in reason


def test_out_of_office_until_the_deadline_excludes(db, make_case, users, thoracic_colleague):
    db.add(OutOfOffice(user_id=users["reviewer"].id, starts_on=NOW.date() + timedelta(days=3),
                       ends_on=NOW.date() + timedelta(days=10)))
    db.commit()
    case = make_case("assigned", cancer_site="thoracic")  # due in 5 business days: the absence overlaps
    assert case.reviewer.id == thoracic_colleague.id
    db.execute(OutOfOffice.__table__.update().values(starts_on=NOW.date() + timedelta(days=30),
                                                     ends_on=NOW.date() + timedelta(days=40)))
    db.commit()
    assert make_case("assigned", cancer_site="breast").reviewer.id == users["reviewer"].id  # away only later


def test_capacity_is_respected(db, make_case, users, thoracic_colleague):
    db.add(ReviewerProfile(user_id=users["reviewer"].id, capacity=1))
    db.add(ReviewerProfile(user_id=thoracic_colleague.id, capacity=1))
    db.commit()
    assert make_case("assigned", cancer_site="thoracic").reviewer.id == users["reviewer"].id
    assert make_case("assigned", cancer_site="thoracic").reviewer.id == thoracic_colleague.id
    full = make_case("triage", cancer_site="thoracic")
    assert "Reviewer: at capacity (1 of 1 open)" in full.lead_review.triage_reason


def test_nobody_eligible_goes_to_triage_with_the_reason(db, make_case, users):
    case = make_case("triage", cancer_site="pediatric")
    assert case.status == "triage" and case.fhir_status == "received"
    review = case.lead_review
    assert review.status == "triage" and review.reviewer is None
    assert review.triage_reason.startswith("No eligible reviewer for a medical oncology review of a pediatric case.")
    assert "Reviewer: does not cover pediatric" in review.triage_reason
    assert db.scalar(select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.action == "case.routing_failed"))
    assert db.scalar(select(Notification).where(Notification.user_id == users["coordinator"].id,
                                                Notification.kind == "triage", Notification.case_id == case.id))
    # The coordinator assigns by hand; the reviewer is offered it like any other case.
    radiologist_case = make_case("triage", cancer_site="pediatric", review_type="radiology_read")
    with pytest.raises(InvalidInput):
        reassign_case(db, radiologist_case, users["reviewer"], by=users["coordinator"], now=NOW, **CTX)


def test_decline_reroutes_excluding_everyone_who_declined(db, make_case, users, thoracic_colleague):
    case = make_case("assigned", cancer_site="thoracic")
    first = case.active_assignment
    with pytest.raises(PermissionDenied):
        decline_offer(db, first, reason="conflict", note="", by=thoracic_colleague, now=NOW, **CTX)
    with pytest.raises(InvalidInput):
        decline_offer(db, first, reason="bored", note="", by=users["reviewer"], now=NOW, **CTX)
    second = decline_offer(db, first, reason="conflict", note="Treated her sister.", by=users["reviewer"], now=NOW, **CTX)
    assert first.status == "declined" and first.fhir_status == "rejected" and not first.active
    assert second.reviewer_id == thoracic_colleague.id and "excluded 1 who declined" in second.reason
    assert case.status == "assigned"
    assert not can_view_case(users["reviewer"], case)  # the decliner no longer sees the case
    assert decline_offer(db, second, reason="capacity", note="", by=thoracic_colleague, now=NOW, **CTX) is None
    assert case.status == "triage"
    assert "Reviewer: declined this review" in case.lead_review.triage_reason
    assert "Colleague: declined this review" in case.lead_review.triage_reason


def test_accepting_starts_the_review_and_only_once(db, make_case, users):
    case = make_case("assigned", cancer_site="thoracic")
    offer = case.active_assignment
    with pytest.raises(PermissionDenied):
        accept_offer(db, offer, by=users["other_reviewer"], now=NOW, **CTX)
    accept_offer(db, offer, by=users["reviewer"], now=NOW, **CTX)
    assert offer.status == "accepted" and offer.fhir_status == "accepted"
    assert case.status == "in_review" and case.fhir_status == "in-progress"
    with pytest.raises(IllegalTransition):
        accept_offer(db, offer, by=users["reviewer"], now=NOW, **CTX)


def test_the_letter_waits_for_every_review_or_a_coordinators_release(db, storage, make_case, users):
    case = make_case("in_review", cancer_site="thoracic")
    lead = users["reviewer"]
    read = add_review(db, case, "radiology_read", policy=POLICY, by=users["coordinator"], now=NOW, **CTX)
    assert read.reviewer.id == users["radiologist"].id and read.status == "offered" and not read.is_lead
    assert read.due_at == NOW + timedelta(days=7)  # 5 business days from Monday
    save_draft(db, case, OpinionDraft("confirmed", "agree", "Same.", "Same.", "Fine."), based_on_version=None,
               by=lead, now=NOW, **CTX)
    with pytest.raises(IllegalTransition) as err:
        sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                              by=lead, now=NOW, **CTX)
    assert "Radiology read (Radiologist, not started)" in err.value.message
    db.rollback()

    case = make_case("in_review", cancer_site="breast")
    read = add_review(db, case, "radiology_read", policy=POLICY, by=users["coordinator"], now=NOW, **CTX)
    accept_offer(db, read.active_assignment, by=users["radiologist"], now=NOW, **CTX)
    complete_contributing_review(db, read, findings="No second lesion on re-read.", by=users["radiologist"], now=NOW, **CTX)
    assert read.status == "completed"
    save_draft(db, case, OpinionDraft("confirmed", "agree", "Same.", "Same.", "Fine."), based_on_version=None,
               by=lead, now=NOW, **CTX)
    letter = sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                                   by=lead, now=NOW, **CTX)
    assert letter.version == 1 and case.status == "letter_delivered"
    assert case.lead_review.status == "completed"

    case = make_case("in_review", cancer_site="breast")
    add_review(db, case, "radiology_read", policy=POLICY, by=users["coordinator"], now=NOW, **CTX)
    with pytest.raises(PermissionDenied):
        release_letter(db, case, why="urgent", by=lead, now=NOW, **CTX)
    release_letter(db, case, why="Radiologist away; clinic needs the answer today.", by=users["coordinator"], now=NOW, **CTX)
    save_draft(db, case, OpinionDraft("confirmed", "agree", "Same.", "Same.", "Fine."), based_on_version=None,
               by=lead, now=NOW, **CTX)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION, by=lead, now=NOW, **CTX)
    assert case.status == "letter_delivered"


def test_routing_decision_lists_everyone_considered(db, make_case, users):
    case = make_case("assigned", cancer_site="gi")
    decision = choose_reviewer(db, case.lead_review, NOW)
    assert any(line.startswith("Radiologist: specialty") for line in decision.excluded)
    assert any(line == "Reviewer: does not cover gastrointestinal" for line in decision.excluded)
