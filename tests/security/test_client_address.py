"""The client's real address behind the documented proxy (class 7): with TRUSTED_PROXY_HOPS=1 the address comes
from X-Forwarded-For, so throttling and the audit trail tell clients apart; with 0 the header is ignored."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from config import TestConfig
from review_portal import create_app
from review_portal.app import ConfigurationError
from review_portal.audit.models import AuditEvent
from review_portal.auth.throttle import FREE_FAILURES

PROXY = "10.0.0.5"


def _client(app, forwarded_for=None):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = PROXY
    if forwarded_for:
        c.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return c


def _fail(c, n):
    return [c.post("/login", data={"email": f"nobody{i}@test.example", "password": "wrong"}).status_code
            for i in range(n)]


def _failed_logins(db):
    db.expire_all()
    return db.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed")).all()


@pytest.fixture
def app_overrides():
    return {"TRUSTED_PROXY_HOPS": 1}


def test_behind_one_proxy_each_client_is_throttled_and_audited_with_its_own_address(app, db, users):
    guesser = _client(app, "198.51.100.7")
    colleague = _client(app, "203.0.113.9")
    limit = FREE_FAILURES["address"]
    assert set(_fail(guesser, limit)) == {401}
    assert _fail(guesser, 1) == [429]  # the guesser's address is now blocked
    # A colleague behind the same proxy still gets in.
    r = colleague.post("/login", data={"email": "referring@test.example", "password": "correct-horse-battery"})
    assert r.status_code == 302
    addresses = {e.source_ip for e in _failed_logins(db)}
    assert addresses == {"198.51.100.7"}
    # A client-supplied entry in front of the proxy's own is not believed: the proxy appended the real one.
    spoofer = _client(app, "1.2.3.4, 192.0.2.44")
    assert _fail(spoofer, 1) == [401]
    assert "192.0.2.44" in {e.source_ip for e in _failed_logins(db)}


@pytest.mark.parametrize("app_overrides", [{"TRUSTED_PROXY_HOPS": 0}])
def test_without_trusted_proxies_the_forwarded_header_is_ignored(app, db, users):
    spoofer = _client(app, "198.51.100.7")
    assert _fail(spoofer, 1) == [401]
    assert {e.source_ip for e in _failed_logins(db)} == {PROXY}


def test_a_nonsense_hop_count_refuses_to_start(tmp_path):
    with pytest.raises(ConfigurationError, match="TRUSTED_PROXY_HOPS"):
        create_app(TestConfig, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", STORAGE_DIR=str(tmp_path / "s"),
                   TRUSTED_PROXY_HOPS=-1)
