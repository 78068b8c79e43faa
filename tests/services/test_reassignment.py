"""A coordinator can move any case: any active reviewer, the fit shown, an override reason when the reviewer
does not match, a conflict of interest as the one hard stop; and a deadline extended with a reason."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from review_portal.assignment.models import Escalation
from review_portal.assignment.routing import reviewer_fits
from review_portal.audit.models import AuditEvent
from review_portal.auth.models import Role
from review_portal.auth.services import create_user
from review_portal.deadlines import SlaPolicy
from review_portal.errors import IllegalTransition, InvalidInput, PermissionDenied
from review_portal.notifications.models import Notification
from review_portal.workflow.assignments import extend_deadline, reassign_review
from tests.conftest import NOW, PASSWORD, TURNAROUND

CTX = {"ip": "127.0.0.1"}
POLICY = SlaPolicy(TURNAROUND, near_due_hours=24)


def test_every_active_reviewer_is_listed_best_fit_first(db, make_case, users):
    case = make_case("assigned", cancer_site="thoracic")  # offered to `reviewer`
    fits = reviewer_fits(db, case.lead_review, NOW)
    names = [f.reviewer.name for f in fits]
    assert users["reviewer"].name not in names  # the current holder is not offered the review again
    assert set(names) == {users["other_reviewer"].name, users["radiologist"].name}
    by_name = {f.reviewer.name: f for f in fits}
    assert any("does not cover thoracic" in c for c in by_name[users["other_reviewer"].name].concerns)
    assert any("specialty (Radiology)" in c for c in by_name[users["radiologist"].name].concerns)
    assert all(f.conflict is None for f in fits)


def test_override_needs_a_reason_and_is_audited(db, make_case, users):
    case = make_case("assigned", cancer_site="thoracic")
    review = case.lead_review
    with pytest.raises(InvalidInput, match="does not fit this review .*Give the reason for overriding"):
        reassign_review(db, review, users["other_reviewer"], by=users["coordinator"], now=NOW, **CTX)
    assert review.reviewer.id == users["reviewer"].id  # nothing changed
    offer = reassign_review(db, review, users["other_reviewer"], override_reason="Thoracic colleague on leave; GI "
                            "oncologist with lung experience", by=users["coordinator"], now=NOW, **CTX)
    assert offer.reviewer_id == users["other_reviewer"].id and offer.is_offered
    assert "override of: does not cover thoracic" in offer.reason and "lung experience" in offer.reason
    row = db.scalar(select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.action == "assignment.override"))
    assert row is not None and "lung experience" in row.detail and users["other_reviewer"].email in row.detail


def test_a_matching_reviewer_needs_no_override_and_comes_first(db, make_case, users):
    case = make_case("assigned", cancer_site="thoracic")
    colleague = create_user(db, email="colleague@test.example", name="Colleague", password=PASSWORD,
                            role=Role.REVIEWER, now=NOW, institution=users["reviewer"].institution,
                            specialty="medical_oncology", sites=["thoracic"])
    db.flush()
    fits = reviewer_fits(db, case.lead_review, NOW)
    assert fits[0].reviewer.id == colleague.id and fits[0].matches
    offer = reassign_review(db, case.lead_review, colleague, note="Balancing load", by=users["coordinator"], now=NOW,
                            **CTX)
    assert offer.reason == "Assigned by Coordinator: Balancing load"
    assert db.scalar(select(AuditEvent).where(AuditEvent.case_id == case.id,
                                              AuditEvent.action == "assignment.override")) is None


def test_conflict_of_interest_is_a_hard_stop(db, make_case, users):
    case = make_case("assigned", cancer_site="thoracic")
    users["radiologist"].institution_id = users["referring"].institution_id
    db.flush()
    fit = next(f for f in reviewer_fits(db, case.lead_review, NOW) if f.reviewer.id == users["radiologist"].id)
    assert fit.conflict == "works at the referring institution (conflict of interest)"
    with pytest.raises(InvalidInput, match="conflict of interest"):
        reassign_review(db, case.lead_review, users["radiologist"], override_reason="urgent", by=users["coordinator"],
                        now=NOW, **CTX)
    with pytest.raises(InvalidInput, match="not an active reviewer"):
        reassign_review(db, case.lead_review, users["referring"], override_reason="urgent", by=users["coordinator"],
                        now=NOW, **CTX)


def test_only_open_cases_and_only_coordinators(db, make_case, users):
    closed = make_case("closed")
    with pytest.raises(IllegalTransition):
        reassign_review(db, closed.lead_review, users["other_reviewer"], override_reason="x", by=users["coordinator"],
                        now=NOW, **CTX)
    case = make_case("assigned", cancer_site="thoracic")
    with pytest.raises(PermissionDenied):
        reassign_review(db, case.lead_review, users["radiologist"], override_reason="x", by=users["reviewer"],
                        now=NOW, **CTX)


def test_extend_deadline_with_a_reason(db, make_case, users):
    case = make_case("in_review", cancer_site="thoracic")
    review = case.lead_review
    before = review.due_at
    with pytest.raises(InvalidInput, match="Say why"):
        extend_deadline(db, review, business_days=2, reason="  ", policy=POLICY, by=users["coordinator"], now=NOW,
                        **CTX)
    with pytest.raises(InvalidInput, match="1 to 30"):
        extend_deadline(db, review, business_days=0, reason="x", policy=POLICY, by=users["coordinator"], now=NOW,
                        **CTX)
    with pytest.raises(PermissionDenied):
        extend_deadline(db, review, business_days=2, reason="x", policy=POLICY, by=users["reviewer"], now=NOW, **CTX)
    extend_deadline(db, review, business_days=2, reason="Waiting for the outside CT", policy=POLICY,
                    by=users["coordinator"], now=NOW, **CTX)
    assert review.due_at - before >= timedelta(days=2)  # two business days, more across a weekend
    assert case.due_at == review.due_at
    flag = db.scalar(select(Escalation).where(Escalation.case_id == case.id, Escalation.kind == "extended"))
    assert flag is not None and "Waiting for the outside CT" in flag.detail and flag.kind_label == "Deadline extended"
    assert db.scalar(select(AuditEvent).where(AuditEvent.case_id == case.id,
                                              AuditEvent.action == "review.deadline_extended")) is not None
    told = db.scalars(select(Notification).where(Notification.user_id == users["reviewer"].id,
                                                 Notification.kind == "deadline_extended")).all()
    assert len(told) == 1 and "Waiting for the outside CT" in told[0].text
    closed = make_case("closed")
    with pytest.raises(IllegalTransition):
        extend_deadline(db, closed.lead_review, business_days=2, reason="x", policy=POLICY, by=users["coordinator"],
                        now=NOW, **CTX)
