"""Outcome follow-ups: asked exactly when due, once; answered by the referrer; the answers move the figures."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from review_portal.analytics import services as analytics
from review_portal.deadlines import policy_from_config
from review_portal.errors import InvalidInput, PermissionDenied
from review_portal.letters.models import Letter
from review_portal.notifications.models import Notification
from review_portal.outcomes.models import OutcomeFollowUp
from review_portal.outcomes.services import OutcomeAnswer, record_outcome, request_due_outcomes


@pytest.fixture
def delivered(db, make_case):
    case = make_case("closed")  # refined / modify: the second opinion differed
    letter = db.scalar(select(Letter).where(Letter.case_id == case.id))
    return case, letter.delivered_at


def _count(db, model, **where):
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.scalar(query)


def test_created_exactly_when_due_and_only_once(app, db, users, delivered):
    case, at = delivered
    assert request_due_outcomes(db, days=90, now=at + timedelta(days=90) - timedelta(seconds=1)) == []
    created = request_due_outcomes(db, days=90, now=at + timedelta(days=90))
    assert [f.case_id for f in created] == [case.id]
    follow_up = created[0]
    assert follow_up.due_at == at + timedelta(days=90) and follow_up.opinions_differed
    assert follow_up.referring_id == users["referring"].id
    db.commit()
    assert request_due_outcomes(db, days=90, now=at + timedelta(days=91)) == []
    assert request_due_outcomes(db, days=90, now=at + timedelta(days=400)) == []
    assert _count(db, OutcomeFollowUp, case_id=case.id) == 1
    notes = db.scalars(select(Notification).where(Notification.kind == "outcome_request")).all()
    assert [(n.user_id, n.link) for n in notes] == [(users["referring"].id, f"/cases/{case.id}/outcome")]
    mail = app.extensions["mailer"].sent  # sent after the commit (MAIL_ENABLED off: the logging mailer)
    assert any(m.to == users["referring"].email and "Outcome follow-up" in m.subject for m in mail)


def test_cli_outcomes_due_runs_from_cron(app, db, delivered, clock):
    case, at = delivered
    runner = app.test_cli_runner()
    clock.set(at + timedelta(days=89))
    assert "0 asked" in runner.invoke(args=["outcomes-due"]).output
    clock.advance(days=1, hours=1)  # 90 days and an hour after the letter
    assert "1 asked (90 days" in runner.invoke(args=["outcomes-due"]).output
    assert "0 asked" in runner.invoke(args=["outcomes-due"]).output
    app.config["OUTCOME_FOLLOW_UP_DAYS"] = 30
    assert "0 asked (30 days" in runner.invoke(args=["outcomes-due"]).output
    db.expire_all()
    assert _count(db, OutcomeFollowUp) == 1


def test_answers_are_validated_and_only_the_referrer_answers(db, users, delivered):
    case, at = delivered
    follow_up = request_due_outcomes(db, days=90, now=at + timedelta(days=90))[0]
    now = at + timedelta(days=95)
    with pytest.raises(PermissionDenied):
        record_outcome(db, follow_up, OutcomeAnswer("fully", "IDC"), by=users["other_referring"], ip="", now=now)
    with pytest.raises(InvalidInput, match="which opinion"):
        record_outcome(db, follow_up, OutcomeAnswer("fully", "IDC"), by=users["referring"], ip="", now=now)
    with pytest.raises(InvalidInput, match="followed"):
        record_outcome(db, follow_up, OutcomeAnswer("mostly", "IDC", "second_opinion", "pathology"),
                       by=users["referring"], ip="", now=now)
    with pytest.raises(InvalidInput, match="how it was confirmed"):
        record_outcome(db, follow_up, OutcomeAnswer("fully", "IDC", "second_opinion", "other"),
                       by=users["referring"], ip="", now=now)
    assert follow_up.answered_at is None
    record_outcome(db, follow_up, OutcomeAnswer("partly", " IDC, HER2 amplified ", "second_opinion", "pathology"),
                   by=users["referring"], ip="", now=now)
    assert (follow_up.recommendation_followed, follow_up.final_diagnosis, follow_up.confirmed_by) == \
        ("partly", "IDC, HER2 amplified", "pathology")


def test_answers_change_the_dashboard(app, db, users, delivered):
    case, at = delivered
    now = at + timedelta(days=100)
    policy = policy_from_config(app.config)
    f = analytics.parse_filters({"period": "all"}, user=users["coordinator"], now=now)

    def confirmed_rows():
        fig = analytics.build_dashboard(db, f, policy=policy, now=now).figure("outcome_confirmed")
        return {row[0]: row[1] for row in fig.rows}, fig.headline

    rows, headline = confirmed_rows()
    assert rows["All"] == 0 and headline == ""
    follow_up = request_due_outcomes(db, days=90, now=at + timedelta(days=90))[0]
    record_outcome(db, follow_up, OutcomeAnswer("fully", "IDC", "second_opinion", "pathology"),
                   by=users["referring"], ip="", now=now)
    rows, headline = confirmed_rows()
    assert rows["The second opinion"] == 1 and rows["All"] == 1
    assert headline.startswith("Of 1 answered cases where the second opinion differed, it was confirmed in 1 (100.0%")
    followed = analytics.build_dashboard(db, f, policy=policy, now=now).figure("outcome_followed")
    assert {row[0]: row[1] for row in followed.rows}["Followed fully"] == 1
