"""A case's status change through the lifecycle on a real case: audited with who, when and why
(the transition table itself: tests/unit/test_lifecycle.py)."""
from datetime import datetime, timezone

from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.cases.lifecycle import CaseStatus, transition

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


def test_a_real_transition_is_audited_with_who_when_and_why(make_case, users, db):
    case = make_case("in_review")
    coordinator = users["coordinator"]
    transition(case, CaseStatus.CANCELLED, NOW, by=coordinator, ip="10.0.0.9", why="duplicate referral")
    db.flush()
    event = db.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.action == "case.status_changed")
                       .order_by(AuditEvent.id.desc())).first()
    assert event.actor_email == coordinator.email and event.at == NOW and event.source_ip == "10.0.0.9"
    assert event.detail == "in_review → cancelled (FHIR cancelled); duplicate referral"
    # Cancelling ends the reviewer's hold on the case.
    assert all(r.status == "cancelled" for r in case.reviews)
    assert all(not a.active for a in case.assignments)
