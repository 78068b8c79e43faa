"""Authentication races on PostgreSQL with real concurrent requests (class 10): one TOTP code, one recovery code
logs in once; parallel failures are each counted."""
from __future__ import annotations

import threading
import time

import pyotp
import pytest
from sqlalchemy import select, text

from review_portal.auth import mfa
from review_portal.auth.models import LoginThrottle, User
from tests.conftest import NOW, PASSWORD, TOTP_SECRET


@pytest.fixture
def app(pg_app):
    return pg_app


def _pending(app, email):
    c = app.test_client()
    r = c.post("/login", data={"email": email, "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith("/login/mfa")
    return c


def _race(app, lock_sql, params, calls):
    """Run `calls` in threads while a third connection holds `lock_sql`; release once all wait on locks."""
    engine = app.extensions["db_engine"]
    results = [None] * len(calls)
    with engine.connect() as locker, engine.connect() as watcher:
        tx = locker.begin()
        locker.execute(text(lock_sql), params)

        def run(i, call):
            results[i] = call()

        threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while True:
            waiting = watcher.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND wait_event_type = 'Lock'")).scalar()
            watcher.rollback()
            if waiting >= len(calls):
                break
            assert time.monotonic() < deadline, "the requests never reached the lock together"
            time.sleep(0.02)
        tx.rollback()
        for t in threads:
            t.join(timeout=60)
    return results


def _logged_in(responses):
    return [r.status_code == 302 and "/login" not in r.headers["Location"] for r in responses]


def test_one_totp_code_logs_in_once_when_sent_twice_at_the_same_moment(app, db, users):
    user = users["coordinator"]
    a, b = _pending(app, user.email), _pending(app, user.email)
    code = pyotp.TOTP(TOTP_SECRET).now()
    responses = _race(app, "SELECT id FROM users WHERE id = :id FOR UPDATE", {"id": user.id}, [
        lambda: a.post("/login/mfa", data={"code": code}), lambda: b.post("/login/mfa", data={"code": code})])
    assert sorted(_logged_in(responses)) == [False, True], [r.status_code for r in responses]


def test_one_recovery_code_logs_in_once_when_sent_twice_at_the_same_moment(app, db, users):
    user = users["coordinator"]
    [code, *_] = mfa.issue_recovery_codes(db, user, now=NOW)
    db.commit()
    a, b = _pending(app, user.email), _pending(app, user.email)
    responses = _race(app, "SELECT id FROM recovery_codes WHERE user_id = :id FOR UPDATE", {"id": user.id}, [
        lambda: a.post("/login/mfa", data={"code": code}), lambda: b.post("/login/mfa", data={"code": code})])
    assert sorted(_logged_in(responses)) == [False, True], [r.status_code for r in responses]
    assert mfa.remaining_recovery_codes(db, db.get(User, user.id)) == mfa.RECOVERY_CODES - 1


def test_parallel_failed_logins_are_each_counted(app, db, users):
    email = users["referring"].email
    n = 4
    clients = [app.test_client() for _ in range(n)]
    # Every request waits to write its count until all of them have checked the (still empty) throttle.
    responses = _race(app, "LOCK TABLE login_throttles IN SHARE ROW EXCLUSIVE MODE", {}, [
        (lambda c=c: c.post("/login", data={"email": email, "password": "wrong-password-x"})) for c in clients])
    assert all(r.status_code in (401, 429) for r in responses), [r.status_code for r in responses]
    db.expire_all()
    rows = {r.scope: r.failures for r in db.scalars(select(LoginThrottle))}
    assert rows == {"account": n, "address": n}


def test_parallel_guesses_at_the_limit_do_not_slip_past_it(app, db, users):
    """One failure short of the account's limit, four guesses arrive together: the first is checked and counted
    (which blocks the account), the others wait for its commit and are throttled; none is checked after it."""
    from review_portal.auth.throttle import FREE_FAILURES

    email = users["referring"].email
    setup = app.test_client()
    for _ in range(FREE_FAILURES["account"] - 1):
        assert setup.post("/login", data={"email": email, "password": "wrong-password-x"}).status_code == 401
    clients = [app.test_client() for _ in range(4)]
    responses = _race(app, "LOCK TABLE login_throttles IN SHARE ROW EXCLUSIVE MODE", {}, [
        (lambda c=c: c.post("/login", data={"email": email, "password": "wrong-password-x"})) for c in clients])
    codes = sorted(r.status_code for r in responses)
    assert codes == [401, 429, 429, 429], codes
    db.expire_all()
    account = db.scalar(select(LoginThrottle).where(LoginThrottle.scope == "account"))
    assert account.failures == FREE_FAILURES["account"]
