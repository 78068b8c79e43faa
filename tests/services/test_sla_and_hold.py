"""The hold clock (awaiting information) and `sla-check`: near-due flags, overdue escalation, recorded once."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from review_portal.deadlines import SlaPolicy
from review_portal.assignment.models import Escalation
from review_portal.workflow.dashboard import dashboard
from review_portal.assignment.sla import sla_check
from review_portal.audit.models import AuditEvent
from review_portal.errors import IllegalTransition, InvalidInput
from review_portal.workflow.conversations import answer_information_request
from review_portal.messaging.services import request_information
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


def test_flask_sla_check_command_runs_and_reports(app, make_case, clock):
    case = make_case("in_review", cancer_site="thoracic")  # due Monday 30 Nov 09:00
    runner = app.test_cli_runner()
    clock.set(NOW + timedelta(days=7) - timedelta(minutes=1))  # a minute before it is due
    early = runner.invoke(args=["sla-check"])
    assert early.exit_code == 0, early.output
    assert f"1 near due flagged, 0 overdue escalated: {case.reference}" in early.output
    clock.advance(days=1, minutes=1)  # Tuesday 09:00: a day late
    result = runner.invoke(args=["sla-check"])
    assert result.exit_code == 0, result.output
    assert f"0 near due flagged, 1 overdue escalated: {case.reference}" in result.output
    assert "0 overdue escalated" in runner.invoke(args=["sla-check"]).output


def _offer_flags(db, kind):
    return db.scalars(select(Escalation).where(Escalation.kind == kind).order_by(Escalation.id)).all()


def test_an_unanswered_offer_is_reminded_once_then_escalated_once(db, make_case, users):
    """Offered Monday 09:00 with a 24 business-hour period: reminder Tuesday 09:00, escalation Wednesday 09:00."""
    case = make_case("assigned", cancer_site="thoracic")
    offer = case.active_assignment
    assert offer.status == "offered" and offer.reviewer_id == users["reviewer"].id
    assert sla_check(db, policy=POLICY, now=NOW + timedelta(hours=23), **CTX).offers_reminded == []

    tuesday = NOW + timedelta(days=1)
    report = sla_check(db, policy=POLICY, now=tuesday, **CTX)
    assert report.offers_reminded == [case.reference] and report.offers_escalated == []
    assert "1 unanswered offer(s) reminded, 0 escalated" in report.summary()
    [remind] = _offer_flags(db, "offer_remind")
    assert remind.reviewer_id == users["reviewer"].id and remind.case_id == case.id and remind.at == tuesday
    reminders = db.scalars(select(Notification).where(Notification.user_id == users["reviewer"].id,
                                                      Notification.kind == "offer_reminder")).all()
    assert len(reminders) == 1 and case.reference in reminders[0].text and "Test Patient" not in reminders[0].text
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "assignment.offer_reminded")).object_id == str(offer.id)

    # Runs before the second period is over change nothing; nobody is reminded twice.
    for hours in (1, 12, 23):
        again = sla_check(db, policy=POLICY, now=tuesday + timedelta(hours=hours), **CTX)
        assert again.offers_reminded == [] and again.offers_escalated == []
    assert len(_offer_flags(db, "offer_remind")) == 1 and _offer_flags(db, "offer_late") == []

    wednesday = tuesday + timedelta(days=1)
    report = sla_check(db, policy=POLICY, now=wednesday, **CTX)
    assert report.offers_escalated == [case.reference] and report.offers_reminded == []
    [late] = _offer_flags(db, "offer_late")
    assert "still unanswered after a reminder" in late.detail
    to_coordinator = db.scalars(select(Notification).where(Notification.user_id == users["coordinator"].id,
                                                           Notification.kind == "offer_unanswered")).all()
    assert len(to_coordinator) == 1
    assert to_coordinator[0].link == f"/cases/{case.id}/reassign?review={case.lead_review.id}"
    for days in (1, 5):  # idempotent: escalated once, however often cron runs
        assert sla_check(db, policy=POLICY, now=wednesday + timedelta(days=days), **CTX).offers_escalated == []
    assert len(_offer_flags(db, "offer_late")) == 1 and len(_offer_flags(db, "offer_remind")) == 1
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "assignment.offer_escalated")) is not None


def test_offer_chasing_counts_business_time_and_starts_afresh_for_a_new_offer(db, make_case, users):
    from review_portal.workflow.assignments import reassign_review

    friday = NOW + timedelta(days=4, hours=8)  # Friday 17:00
    case = make_case("assigned", cancer_site="thoracic")
    case.active_assignment.assigned_at = friday  # as if offered on Friday afternoon
    db.flush()
    # Saturday and Sunday do not count: Monday 16:00 is only 23 business hours later.
    assert sla_check(db, policy=POLICY, now=friday + timedelta(days=2, hours=23), **CTX).offers_reminded == []
    assert sla_check(db, policy=POLICY, now=friday + timedelta(days=3), **CTX).offers_reminded == [case.reference]

    # The coordinator reassigns; the new offer has its own reminder, and the old flags do not count for it.
    colleague = users["other_reviewer"]
    colleague.sites = ["gi", "thoracic"]
    db.flush()
    later = friday + timedelta(days=3, hours=1)
    reassign_review(db, case.lead_review, colleague, note="", by=users["coordinator"], now=later, **CTX)
    assert sla_check(db, policy=POLICY, now=later + timedelta(days=1), **CTX).offers_reminded == [case.reference]
    assert [f.reviewer_id for f in _offer_flags(db, "offer_remind")] == [users["reviewer"].id, colleague.id]
    assert _offer_flags(db, "offer_late") == []


def test_accepted_offers_are_not_chased_and_zero_hours_turns_chasing_off(db, make_case):
    accepted = make_case("in_review", cancer_site="thoracic")
    waiting = make_case("assigned", cancer_site="thoracic")
    assert sla_check(db, policy=SlaPolicy(TURNAROUND, offer_reminder_hours=0), now=NOW + timedelta(days=2),
                     **CTX).offers_reminded == []
    report = sla_check(db, policy=POLICY, now=NOW + timedelta(days=2), **CTX)
    assert report.offers_reminded == [waiting.reference] and accepted.reference not in report.offers_reminded


def test_offer_reminder_hours_come_from_config(app):
    from review_portal.deadlines import policy_from_config

    assert policy_from_config(app.config).offer_reminder_hours == 24
    assert policy_from_config({**app.config, "OFFER_REMINDER_HOURS": "6"}).offer_reminder_hours == 6
