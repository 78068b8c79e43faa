"""Authentication and sessions (ASVS V2, V3; HIPAA 164.312(a)(2)(iii), (d)): each test is an attack."""
from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.auth import passwords
from review_portal.auth.models import LoginThrottle, RecoveryCode, User, UserSession
from review_portal.auth.services import create_user
from review_portal.errors import InvalidInput
from tests.conftest import NOW, PASSWORD, login_client, totp_now


def actions(db, action):
    db.expire_all()
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


@pytest.mark.parametrize("bad", ["short-pass1", "1qaz2wsx3edc", "password2026!!", "Password123456", "aaaaaaaaaaaaaaaa",
                                 "newuser-is-here-2026"])
def test_weak_passwords_are_refused(db, bad):
    assert "1qaz2wsx3edc" in passwords.common_passwords() or bad != "1qaz2wsx3edc"
    with pytest.raises(InvalidInput):
        create_user(db, email="newuser@test.example", name="New User", password=bad, role="referring", now=NOW)


def test_passwords_are_argon2id_and_rehashed_when_parameters_change(app, db, users, client):
    user = users["referring"]
    assert user.password_hash.startswith("$argon2id$")
    passwords.configure(time_cost=2, memory_cost=2048)  # an older, different parameter set
    user.password_hash = passwords.hash_password(PASSWORD)
    db.commit()
    passwords.configure(app.config["ARGON2_TIME_COST"], app.config["ARGON2_MEMORY_COST"])
    assert passwords.needs_rehash(user.password_hash)
    assert login_client(app, client, user.email).status_code == 302
    db.expire_all()
    assert not passwords.needs_rehash(db.get(User, user.id).password_hash)


def test_unknown_user_and_wrong_password_answer_the_same(client, users):
    email = users["referring"].email  # read before the failed requests roll the session back
    unknown = client.post("/login", data={"email": "nobody@test.example", "password": "whatever-password"})
    wrong = client.post("/login", data={"email": email, "password": "whatever-password"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.data.replace(b"nobody@test.example", b"X") == wrong.data.replace(email.encode(), b"X")


def test_password_alone_does_not_log_a_reviewer_in(app, client, users, db):
    r = client.post("/login", data={"email": users["reviewer"].email, "password": PASSWORD})
    assert r.headers["Location"].endswith("/login/mfa")
    assert client.get("/cases").status_code == 302  # still logged out
    assert client.post("/login/mfa", data={"code": "000000"}).status_code == 401
    assert client.get("/cases").status_code == 302
    assert actions(db, "login.failed")[-1].outcome == "failed"


def test_replayed_totp_code_is_refused(app, users, db):
    code = totp_now()
    first = app.test_client()
    first.post("/login", data={"email": users["coordinator"].email, "password": PASSWORD})
    assert first.post("/login/mfa", data={"code": code}).status_code == 302
    second = app.test_client()  # an attacker who watched the code being typed
    second.post("/login", data={"email": users["coordinator"].email, "password": PASSWORD})
    assert second.post("/login/mfa", data={"code": code}).status_code == 401
    assert actions(db, "mfa.replay_refused")


def test_first_login_enrols_totp_with_a_qr_code_and_hashed_one_time_recovery_codes(app, db, client):
    user = create_user(db, email="newrev@test.example", name="New Reviewer", password=PASSWORD, role="reviewer",
                       specialty="radiology", now=NOW)
    db.commit()
    r = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert r.headers["Location"].endswith("/login/enrol")
    page = client.get("/login/enrol").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page
    secret = page.split('class="totp-secret">')[1].split("<")[0]
    assert client.get("/cases").status_code == 302  # not logged in before enrolment is complete
    assert client.post("/login/enrol", data={"code": "123456"}).status_code == 400
    done = client.post("/login/enrol", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    codes = [c.split("</code>")[0] for c in done.get_data(as_text=True).split("<li><code>")[1:]]
    assert len(codes) == 10
    assert client.get("/cases").status_code == 200
    stored = db.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)).all()
    assert all(h.startswith("$argon2id$") for h in stored) and not any(c.replace("-", "") in h for c in codes for h in stored)
    assert actions(db, "mfa.enrolled")
    # A recovery code works once.
    for attempt, expected in ((1, 302), (2, 401)):
        c = app.test_client()
        c.post("/login", data={"email": user.email, "password": PASSWORD})
        assert c.post("/login/mfa", data={"code": codes[0]}).status_code == expected, attempt


def test_account_throttled_with_backoff_audited_and_not_forever(app, client, users, db, clock):
    email = users["referring"].email
    for _ in range(5):
        assert client.post("/login", data={"email": email, "password": "wrong-password-xx"}).status_code == 401
    r = client.post("/login", data={"email": email, "password": PASSWORD})
    assert r.status_code == 429  # even the right password waits
    assert actions(db, "login.throttled") and len(actions(db, "login.failed")) == 5
    row = db.scalar(select(LoginThrottle).where(LoginThrottle.scope == "account", LoginThrottle.key == email))
    first_wait = row.blocked_until - row.last_failed_at
    assert timedelta(0) < first_wait <= timedelta(minutes=15)
    # The block ends: no permanent lock-out an attacker could use against the real user.
    clock.set(row.blocked_until - timedelta(seconds=1))
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 429
    clock.set(row.blocked_until + timedelta(seconds=1))
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302


def test_backoff_grows_and_is_capped():
    from review_portal.auth.throttle import MAX_DELAY, delay_after

    delays = [delay_after(n, "account") for n in range(5, 20)]
    assert delays[0] < delays[1] < delays[2] and max(delays) == MAX_DELAY


def test_source_address_throttled_across_many_accounts(client, users, db):
    email = users["referring"].email  # read before the failed requests roll the session back
    for n in range(20):
        client.post("/login", data={"email": f"guess{n}@test.example", "password": "wrong-password-xx"})
    r = client.post("/login", data={"email": email, "password": PASSWORD})
    assert r.status_code == 429


def _sid(db, user):
    return db.scalars(select(UserSession).where(UserSession.user_id == user.id).order_by(UserSession.id)).all()


def test_new_session_at_login_no_fixation(app, users, db):
    c = app.test_client()
    with c.session_transaction() as s:
        s["sid"] = "attacker-planted-session"
        s["_user_id"] = str(users["referring"].id)
    assert c.get("/cases").status_code == 302  # a planted id is not a session
    login_client(app, c, users["referring"].email)
    with c.session_transaction() as s:
        assert s["sid"] != "attacker-planted-session"
    assert c.get("/cases").status_code == 200


def test_logout_ends_the_session_on_the_server(app, users, login_as):
    c = login_as("referring")
    with c.session_transaction() as s:
        stolen = dict(s)
    c.post("/logout")
    thief = app.test_client()
    with thief.session_transaction() as s:
        s.update(stolen)  # replaying the cookie captured before logout
    assert thief.get("/cases").status_code == 302


def test_log_out_everywhere(app, users, login_as, db):
    laptop, phone = login_as("reviewer"), login_as("reviewer")
    assert phone.get("/cases").status_code == 200
    laptop.post("/logout/everywhere")
    assert phone.get("/cases").status_code == 302 and laptop.get("/cases").status_code == 302
    assert actions(db, "logout.everywhere")


def _end_reason(db, user):
    db.expire_all()
    return [row.end_reason for row in _sid(db, user)]


def test_idle_timeout_ends_the_session(users, login_as, db, clock):
    c = login_as("referring")
    for _ in range(3):  # steady use keeps the session alive well past 15 minutes
        clock.advance(minutes=14)
        assert c.get("/cases").status_code == 200
    clock.advance(minutes=15, seconds=1)  # 15 idle minutes: the automatic logoff
    r = c.get("/cases")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert _end_reason(db, users["referring"]) == ["idle timeout"]


def test_absolute_timeout_ends_even_a_busy_session(users, login_as, db, clock):
    c = login_as("referring")
    for _ in range(51):  # 51 x 14 minutes: busy for 11 h 54 min, never idle
        clock.advance(minutes=14)
        assert c.get("/cases").status_code == 200
    clock.advance(minutes=7)  # 12 h 1 min after the login
    r = c.get("/cases")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert _end_reason(db, users["referring"]) == ["absolute timeout"]


def test_cookie_flags(app, client, users):
    r = login_client(app, client, users["referring"].email)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure_and_host_bound(tmp_path):
    from config import ProductionConfig
    from review_portal import create_app

    app = create_app(ProductionConfig, SECRET_KEY="x" * 40, DATABASE_URL=f"sqlite:///{tmp_path}/p.db",
                     STORAGE_DIR=str(tmp_path / "s"), ALLOW_SQLITE_IN_PRODUCTION=True)
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert "Strict-Transport-Security" in app.test_client().get("/healthz").headers


def test_password_reset_by_single_use_expiring_token_without_patient_data(app, client, users, db, make_case, clock):
    make_case("assigned")
    outbox = app.extensions.setdefault("outbox", [])
    same = [client.post("/password/forgot", data={"email": e}) for e in (users["referring"].email, "nobody@test.example")]
    assert same[0].status_code == same[1].status_code == 302 and len(outbox) == 1
    body = outbox[0].get_content()
    assert "Test Patient" not in body and "MRN-1" not in body and "SO-" not in body
    link = body.split("http://localhost")[1].split()[0]
    victim_session = login_client(app, app.test_client(), users["referring"].email)
    r = client.post(link, data={"new_password": "a-brand-new-passphrase", "confirm": "a-brand-new-passphrase"})
    assert r.status_code == 302
    assert client.post(link, data={"new_password": "another-new-passphrase", "confirm": "another-new-passphrase"}).status_code == 404
    assert login_client(app, app.test_client(), users["referring"].email, "a-brand-new-passphrase").status_code == 302
    # The session logged in before the reset (perhaps the attacker's) is over; only the new login is live.
    assert victim_session.status_code == 302
    db.expire_all()
    before, after = _sid(db, users["referring"])
    assert before.ended_at is not None and before.end_reason == "password changed"
    assert after.ended_at is None
    # A reset link lasts an hour; expired, it is refused.
    client.post("/password/forgot", data={"email": users["referring"].email})
    link2 = outbox[-1].get_content().split("http://localhost")[1].split()[0]
    clock.advance(minutes=59)
    assert client.get(link2).status_code == 200
    clock.advance(minutes=1, seconds=1)
    assert client.get(link2).status_code == 404


def test_invitation_then_first_login_enrols_mfa(app, users, login_as, db):
    admin = login_as("admin")
    r = admin.post("/admin/users/invite", data={"email": "invitee@test.example", "name": "Invited Person",
                                                  "role": "coordinator", "specialty": ""})
    assert r.status_code == 302
    mail = app.extensions["outbox"][-1]
    link = mail.get_content().split("http://localhost")[1].split()[0]
    fresh = app.test_client()
    # No password yet: an empty one is a form error, any guessed one is refused like a wrong password.
    assert fresh.post("/login", data={"email": "invitee@test.example", "password": ""}).status_code == 400
    assert fresh.post("/login", data={"email": "invitee@test.example", "password": "a-guess-at-it"}).status_code == 401
    assert fresh.post(link, data={"new_password": "invited-and-strong-pw", "confirm": "invited-and-strong-pw"}).status_code == 302
    assert fresh.get(link).status_code == 404  # single use
    r = fresh.post("/login", data={"email": "invitee@test.example", "password": "invited-and-strong-pw"})
    assert r.headers["Location"].endswith("/login/enrol")
    assert login_as("referring").post("/admin/users/invite", data={"email": "x@test.example", "name": "X",
                                                                   "role": "admin"}).status_code == 403
