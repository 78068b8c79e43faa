"""Authentication edges (class 10): moving the second factor needs the password and a current code; recovery-code
guessing goes through the login's throttle (it shares the /login/mfa route)."""
from __future__ import annotations

import pyotp
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.auth.models import User
from review_portal.auth.throttle import FREE_FAILURES
from tests.conftest import PASSWORD, TOTP_SECRET, _allow_code_reuse


def _new_secret(c):
    assert c.get("/account/mfa/enrol").status_code == 200
    with c.session_transaction() as s:
        return s["enrol_secret"]


def test_moving_the_second_factor_needs_the_password_and_a_current_code(app, db, users, login_as):
    email = users["reviewer"].email
    c = login_as("reviewer")
    secret = _new_secret(c)
    new_code = pyotp.TOTP(secret).now()
    # The new app's code alone (a stolen, unlocked session) is not enough.
    assert c.post("/account/mfa/enrol", data={"code": new_code}).status_code == 400
    _allow_code_reuse(app, email)
    r = c.post("/account/mfa/enrol", data={"code": new_code, "password": PASSWORD})
    assert r.status_code == 400 and b"current authenticator" in r.data
    r = c.post("/account/mfa/enrol", data={"code": new_code, "password": "wrong-password-here",
                                           "current_code": pyotp.TOTP(TOTP_SECRET).now()})
    assert r.status_code == 400
    db.expire_all()
    assert db.scalar(select(User.totp_secret).where(User.email == email)) == TOTP_SECRET
    refused = db.scalars(select(AuditEvent).where(AuditEvent.action == "mfa.reenrolment_refused")).all()
    assert len(refused) == 3
    _allow_code_reuse(app, email)
    r = c.post("/account/mfa/enrol", data={"code": new_code, "password": PASSWORD,
                                           "current_code": pyotp.TOTP(TOTP_SECRET).now()})
    assert r.status_code == 200 and b"recovery codes" in r.data
    db.expire_all()
    assert db.scalar(select(User.totp_secret).where(User.email == email)) == secret


def test_recovery_code_guessing_is_throttled_like_the_login(app, db, users):
    c = app.test_client()
    assert c.post("/login", data={"email": users["reviewer"].email, "password": PASSWORD}).status_code == 302
    limit = FREE_FAILURES["account"]
    for i in range(limit):
        assert c.post("/login/mfa", data={"code": f"abcde-fgh{i:02d}"[:11]}).status_code == 401
    r = c.post("/login/mfa", data={"code": "abcde-fghjk"})
    assert r.status_code == 429 and b"Too many attempts" in r.data


def test_guessing_the_password_to_move_the_second_factor_is_throttled(app, db, users, login_as):
    """A stolen session cannot guess its way to a new authenticator: the guesses count like failed logins."""
    c = login_as("reviewer")
    secret = _new_secret(c)
    for _ in range(FREE_FAILURES["account"]):
        r = c.post("/account/mfa/enrol", data={"code": pyotp.TOTP(secret).now(), "password": "guessed-password",
                                               "current_code": pyotp.TOTP(TOTP_SECRET).now()})
        assert r.status_code == 400
    r = c.post("/account/mfa/enrol", data={"code": pyotp.TOTP(secret).now(), "password": PASSWORD,
                                           "current_code": pyotp.TOTP(TOTP_SECRET).now()})
    assert r.status_code == 429 and b"Too many attempts" in r.data
    db.expire_all()
    assert db.scalar(select(User.totp_secret).where(User.email == users["reviewer"].email)) == TOTP_SECRET
