"""Personal API tokens: created in the UI and shown once, hashed at rest, scoped, expiring, revocable, audited;
and the API accepts nothing but them (a browser session, with or without CSRF token, is refused)."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from sqlalchemy import func, select

from config import TestConfig
from review_portal import create_app
from review_portal.api.models import ApiToken
from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case
from tests.api.conftest import bearer, referral_json
from tests.conftest import PASSWORD

TOKEN_RE = re.compile(r"sop_[A-Za-z0-9_-]{43}")


def _events(db, action):
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_token_is_created_in_the_ui_shown_once_and_stored_only_as_a_hash(app, db, users, login_as, client):
    browser = login_as("referring")
    assert browser.get("/account/security").status_code == 200
    assert b"/account/api-tokens" in browser.get("/account/security").data
    wrong = browser.post("/account/api-tokens", data={"name": "Riverside EHR", "scope": "write", "days": "90",
                                                      "password": "not-my-password"})
    assert wrong.status_code == 400 and db.scalar(select(func.count(ApiToken.id))) == 0

    page = browser.post("/account/api-tokens", data={"name": "Riverside EHR", "scope": "write", "days": "90",
                                                     "password": PASSWORD})
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    [raw] = TOKEN_RE.findall(page.get_data(as_text=True))

    row = db.scalar(select(ApiToken))
    assert row.token_sha256 == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {row.token_sha256, row.prefix, row.name} and raw.startswith(row.prefix)
    assert row.scope == "write" and (row.expires_at - row.created_at) == timedelta(days=90)
    # Shown once: the list page shows only the prefix from now on.
    again = browser.get("/account/api-tokens").get_data(as_text=True)
    assert raw not in again and f"{row.prefix}…" in again
    [created] = _events(db, "api_token.created")
    assert created.actor_id == users["referring"].id and raw not in created.detail

    me = client.get("/api/v1/me", headers=bearer(raw))
    assert me.status_code == 200
    assert me.json["email"] == users["referring"].email and me.json["token"]["scope"] == "write"


def test_every_use_is_audited_and_recorded_on_the_token(client, db, make_token):
    raw = make_token("referring", "read")
    for _ in range(2):
        assert client.get("/api/v1/referrals", headers=bearer(raw)).status_code == 200
    used = _events(db, "api_token.used")
    assert len(used) == 2 and all(e.detail == "GET /api/v1/referrals" for e in used)
    token = db.scalar(select(ApiToken))
    assert token.last_used_at is not None
    # A use that fails (no such case) is a use too, and stays in the trail after the rollback.
    assert client.get("/api/v1/referrals/999", headers=bearer(raw)).status_code == 404
    assert len(_events(db, "api_token.used")) == 3


def test_expired_unknown_and_malformed_tokens_are_refused(client, db, make_token):
    expired = make_token("referring", "write", days=7, age=timedelta(days=8))
    r = client.get("/api/v1/me", headers=bearer(expired))
    assert r.status_code == 401 and "expired" in r.json["error"]
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert client.get("/api/v1/me", headers=bearer("sop_" + "x" * 43)).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer"}).status_code == 401
    refused = _events(db, "api_token.refused")
    assert len(refused) == 4 and all(e.outcome == "denied" for e in refused)
    assert refused[0].detail.startswith("expired")


def test_revoked_token_is_refused_from_then_on_and_only_its_owner_revokes_it(app, db, users, make_token, login_as,
                                                                              client):
    raw = make_token("referring", "write")
    token_id = db.scalar(select(ApiToken.id))
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 200

    stranger = login_as("other_referring")
    assert stranger.post(f"/account/api-tokens/{token_id}/revoke").status_code == 404
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 200

    owner = login_as("referring")
    r = owner.post(f"/account/api-tokens/{token_id}/revoke")
    assert r.status_code == 302
    refused = client.get("/api/v1/me", headers=bearer(raw))
    assert refused.status_code == 401 and "revoked" in refused.json["error"]
    [revoked] = _events(db, "api_token.revoked")
    assert revoked.actor_id == users["referring"].id and revoked.object_id == str(token_id)
    assert "revoked" in owner.get("/account/api-tokens").get_data(as_text=True)


def test_read_scope_can_read_but_not_write(client, db, make_token):
    raw = make_token("referring", "read")
    before = db.scalar(select(func.count(Case.id)))
    r = client.post("/api/v1/referrals", json=referral_json(), headers=bearer(raw))
    assert r.status_code == 403 and "read-only" in r.json["error"]
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert db.scalar(select(func.count(Case.id))) == before
    assert client.get("/api/v1/referrals", headers=bearer(raw)).status_code == 200
    assert _events(db, "api_token.refused")[-1].detail.startswith("scope read cannot write")


def test_a_browser_session_cannot_use_the_api_even_with_a_csrf_token(app, db, users, make_token):
    """CSRF switched on: the API is exempt because it ignores the session cookie entirely."""
    from review_portal.db import session as db_session

    raw = make_token("referring", "write")
    email = users["referring"].email
    db_session.remove()
    csrf_app = create_app(TestConfig, WTF_CSRF_ENABLED=True, DATABASE_URL=app.config["DATABASE_URL"],
                          STORAGE_DIR=app.config["STORAGE_DIR"])
    browser = csrf_app.test_client()
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                     browser.get("/login").get_data(as_text=True)).group(1)
    assert browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf}).status_code == 302
    assert browser.get("/cases").status_code == 200  # the session works for the portal

    r = browser.get("/api/v1/referrals")
    assert r.status_code == 401 and "Browser sessions are not accepted" in r.json["error"]
    r = browser.post("/api/v1/referrals", json=referral_json(), headers={"X-CSRFToken": csrf})
    assert r.status_code == 401
    with csrf_app.app_context():
        assert db_session().scalar(select(func.count(Case.id))) == 0
        db_session.remove()
    # With a token no CSRF token is needed (and the session cookie alongside changes nothing).
    r = browser.post("/api/v1/referrals", json=referral_json(), headers=bearer(raw))
    assert r.status_code == 201, r.json
    with csrf_app.app_context():
        assert db_session().scalar(select(func.count(Case.id))) == 1
        db_session.remove()
