"""Exactly one of two simultaneous changes wins, on PostgreSQL with real concurrent connections.

Each test holds a row lock from a third connection, sends both requests from two threads, waits
until PostgreSQL reports both of them blocked on that lock (so they really overlap: each has read
the same version), then releases it. One request must succeed, the other get a 409 that says why.
"""
import threading
import time

import pytest
from sqlalchemy import select, text

from review_portal.assignment.models import Assignment
from review_portal.auth.models import Role
from review_portal.auth.services import create_user
from review_portal.opinions.models import Opinion
from review_portal.opinions.services import OpinionDraft, save_draft
from tests.conftest import NOW, PASSWORD, TOTP_SECRET, login_client

CONFLICT_MESSAGE = "Someone else changed this record at the same moment"


@pytest.fixture
def app(pg_app):
    return pg_app  # these tests are about PostgreSQL, whatever database the rest of the run uses


def _client(app, email):
    c = app.test_client()
    r = login_client(app, c, email)  # password, then TOTP where the role needs it
    assert r.status_code == 302 and "/login" not in r.headers["Location"], "login did not complete"
    return c


def _race(app, lock_sql: str, params: dict, requests):
    """Run `requests` (callables returning a response) while `lock_sql` holds a row lock; return responses."""
    engine = app.extensions["db_engine"]
    results = [None] * len(requests)
    with engine.connect() as locker, engine.connect() as watcher:
        tx = locker.begin()
        locker.execute(text(lock_sql), params)

        def run(i, call):
            results[i] = call()

        threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(requests)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while True:
            waiting = watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )).scalar()
            watcher.rollback()
            if waiting >= len(requests):
                break
            assert time.monotonic() < deadline, "the requests never reached the lock together"
            time.sleep(0.02)
        tx.rollback()
        for t in threads:
            t.join(timeout=30)
    return results


def test_two_coordinators_reassigning_the_same_case_one_wins(app, db, users, make_case):
    case = make_case("assigned")
    centre = users["reviewer"].institution
    first = create_user(db, email="first@test.example", name="First Oncologist", password=PASSWORD, role=Role.REVIEWER,
                        now=NOW, institution=centre, specialty="medical_oncology", sites=["breast"])
    second = create_user(db, email="second@test.example", name="Second Oncologist", password=PASSWORD,
                         role=Role.REVIEWER, now=NOW, institution=centre, specialty="medical_oncology", sites=["breast"])
    coord2 = create_user(db, email="coord2@test.example", name="Coordinator Two", password=PASSWORD,
                         role=Role.COORDINATOR, now=NOW, institution=centre)
    coord2.totp_secret, coord2.totp_enabled_at = TOTP_SECRET, NOW  # coordinators must pass MFA
    db.commit()
    a, b = _client(app, users["coordinator"].email), _client(app, "coord2@test.example")
    url = f"/cases/{case.id}/reassign"
    responses = _race(app, "SELECT id FROM cases WHERE id = :id FOR UPDATE", {"id": case.id}, [
        lambda: a.post(url, data={"reviewer_id": first.id, "note": "A"}),
        lambda: b.post(url, data={"reviewer_id": second.id, "note": "B"}),
    ])
    codes = sorted(r.status_code for r in responses)
    assert codes == [302, 409], codes
    loser = next(r for r in responses if r.status_code == 409)
    assert CONFLICT_MESSAGE in loser.get_data(as_text=True)
    winner_id = first.id if responses[0].status_code == 302 else second.id
    db.rollback()
    active = db.scalars(select(Assignment).where(Assignment.case_id == case.id, Assignment.active.is_(True))).all()
    assert [x.reviewer_id for x in active] == [winner_id]


def test_two_saves_of_one_draft_one_wins(app, db, users, make_case):
    case = make_case("in_review")
    save_draft(db, case, OpinionDraft("refined", "modify", "First text."), based_on_version=0, by=users["reviewer"],
               ip="127.0.0.1", now=NOW)
    db.commit()
    opinion = db.scalar(select(Opinion).where(Opinion.case_id == case.id))
    version = opinion.version
    tab1, tab2 = _client(app, users["reviewer"].email), _client(app, users["reviewer"].email)
    url = f"/cases/{case.id}/opinion"

    def save(text_):
        return lambda: (tab1 if text_ == "from tab one" else tab2).post(url, data={
            "version": str(version), "diagnosis_concordance": "refined", "plan_concordance": "modify",
            "reviewer_diagnosis": text_, "recommended_plan": "Plan.", "rationale": "Why.", "further_tests": ""})

    responses = _race(app, "SELECT id FROM opinions WHERE id = :id FOR UPDATE", {"id": opinion.id},
                      [save("from tab one"), save("from tab two")])
    codes = sorted(r.status_code for r in responses)
    assert codes == [302, 409], codes
    loser = next(r for r in responses if r.status_code == 409)
    assert CONFLICT_MESSAGE in loser.get_data(as_text=True)
    winner_text = "from tab one" if responses[0].status_code == 302 else "from tab two"
    db.expire_all()
    saved = db.get(Opinion, opinion.id)
    assert saved.reviewer_diagnosis == winner_text
    assert saved.version == version + 1


def test_two_tabs_accepting_the_same_offer_one_wins(app, db, users, make_case):
    case = make_case("assigned")
    offer = case.active_assignment
    assert offer.reviewer_id == users["reviewer"].id and offer.status == "offered"
    tab1, tab2 = _client(app, users["reviewer"].email), _client(app, users["reviewer"].email)
    url = f"/cases/{case.id}/assignments/{offer.id}/accept"
    responses = _race(app, "SELECT id FROM cases WHERE id = :id FOR UPDATE", {"id": case.id},
                      [lambda: tab1.post(url), lambda: tab2.post(url)])
    codes = sorted(r.status_code for r in responses)
    assert codes == [302, 409], codes
    db.expire_all()
    accepted = db.scalars(select(Assignment).where(Assignment.case_id == case.id, Assignment.status == "accepted")).all()
    assert len(accepted) == 1
    rows = db.execute(text("SELECT count(*) FROM audit_events WHERE action = 'assignment.accepted' AND case_id = :c"),
                      {"c": case.id}).scalar()
    assert rows == 1  # the loser's audit row went with its rolled-back transaction
