"""The hold clock (awaiting information) and `sla-check`: near-due flags, overdue escalation, recorded once."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from review_portal.assignment.deadlines import SlaPolicy
from review_portal.assignment.models import Escalation
from review_portal.assignment.services import dashboard, sla_check
from review_portal.audit.models import AuditEvent
from review_portal.errors import IllegalTransition, InvalidInput
from review_portal.messaging.services import answer_information_request, request_information
from review_portal.notifications.models import Notification
from tests.conftest import NOW, TURNAROUND

CTX = {"ip": "127.0.0.1"}
POLICY = SlaPolicy(TURNAROUND, near_due_hours=24)


def test_waiting_for_the_referrer_does_not_count_against_the_reviewer(db, storage, make_case, users):
    case = make_case("in_review", cancer_site="thoracic")  # submitted Monday 23 Nov 09:00, due Monday 30 Nov 09:00
    due = case.lead_review.due_at
    assert due == NOW + timedelta(days=7)
    with pytest.raises(InvalidInput):
        request_information(db, case, items=[], detail="x", by=users["reviewer"], now=NOW, **CTX)
    request_information(db, case, items=["pathology_slides", "tests"], detail="Please send the slides and PD-L1.",
                        by=users["reviewer"], now=NOW + timedelta(days=1), **CTX)  # Tuesday 09:00
    assert case.status == "awaiting_information" and case.fhir_status == "on-hold"
    assert case.hold_started_at == NOW + timedelta(days=1)
    with pytest.raises(IllegalTransition):  # one open request at a time
        request_information(db, case, items=["records"], detail="more", by=users["reviewer"], now=NOW, **CTX)
    # While on hold the dashboard shows the clock stopped, not running down.
    row = next(r for r in dashboard(db, policy=POLICY, now=NOW + timedelta(days=20))["rows"] if r.case.id == case.id)
    assert row.state == "on_hold" and row.seconds_left == 4 * 24 * 3600
    with pytest.raises(InvalidInput):
        answer_information_request(db, storage, case, answer="  ", policy=POLICY, by=users["referring"], now=NOW, **CTX)
    # Answered the following Monday 09:00: four business days (Tue–Fri) were spent waiting.
    answer_information_request(db, storage, case, answer="Slides couriered; PD-L1 TPS 60%.", policy=POLICY,
                               by=users["referring"], now=NOW + timedelta(days=7), **CTX)
    assert case.status == "in_review" and case.hold_started_at is None
    assert case.lead_review.due_at == due + timedelta(days=4)  # Thursday 3 Dec 09:00
    assert case.due_at == case.lead_review.due_at
    assert db.scalar(select(Notification).where(Notification.user_id == users["reviewer"].id,
                                                Notification.kind == "information_answer"))


def test_sla_check_flags_near_due_then_escalates_overdue_once(db, make_case, users):
    case = make_case("in_review", cancer_site="thoracic")  # due Monday 30 Nov 09:00
    review = case.lead_review
    assert sla_check(db, policy=POLICY, now=NOW + timedelta(days=3), **CTX).near_due == []  # Thursday: on time
    friday = NOW + timedelta(days=4, hours=10)  # Friday 19:00: 14 business hours left
    report = sla_check(db, policy=POLICY, now=friday, **CTX)
    assert report.near_due == [case.reference] and report.overdue == []
    assert review.near_due_flagged_at == friday
    assert sla_check(db, policy=POLICY, now=friday + timedelta(hours=1), **CTX).near_due == []  # flagged once
    reviewer_notes = db.scalars(select(Notification).where(Notification.user_id == users["reviewer"].id,
                                                           Notification.kind == "deadline_near")).all()
    assert len(reviewer_notes) == 1 and case.reference in reviewer_notes[0].text

    tuesday = NOW + timedelta(days=8)
    report = sla_check(db, policy=POLICY, now=tuesday, **CTX)
    assert report.overdue == [case.reference]
    assert sla_check(db, policy=POLICY, now=tuesday + timedelta(hours=2), **CTX).overdue == []
    escalations = db.scalars(select(Escalation).where(Escalation.case_id == case.id).order_by(Escalation.id)).all()
    assert [e.kind for e in escalations] == ["near_due", "overdue"]
    assert "overdue by 1 business day" in escalations[1].detail
    coordinator_note = db.scalar(select(Notification).where(Notification.user_id == users["coordinator"].id,
                                                            Notification.kind == "overdue"))
    assert "Consider reassigning" in coordinator_note.text
    assert coordinator_note.link == f"/cases/{case.id}/reassign?review={review.id}"
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id,
                                                         AuditEvent.action.like("review.%"))).all()
    assert sorted(actions) == ["review.escalated", "review.near_due"]


def test_dashboard_puts_overdue_first_then_near_due_then_on_time(db, make_case):
    on_time = make_case("in_review", cancer_site="thoracic")
    urgent = make_case("in_review", cancer_site="breast", priority="urgent")  # due Wednesday 09:00
    data = dashboard(db, policy=POLICY, now=NOW + timedelta(days=2, hours=1))  # Wednesday 10:00
    order = [(r.case.id, r.state) for r in data["rows"]]
    assert order == [(urgent.id, "overdue"), (on_time.id, "on_time")]
    assert data["counts"]["overdue"] == 1 and data["counts"]["on_time"] == 1


def test_flask_sla_check_command_runs_and_reports(app, make_case, monkeypatch):
    import review_portal.clock as clock

    case = make_case("in_review", cancer_site="thoracic")
    monkeypatch.setattr(clock, "utcnow", lambda: NOW + timedelta(days=8))
    result = app.test_cli_runner().invoke(args=["sla-check"])
    assert result.exit_code == 0, result.output
    assert f"0 near due flagged, 1 overdue escalated: {case.reference}" in result.output
    assert "0 overdue escalated" in app.test_cli_runner().invoke(args=["sla-check"]).output
