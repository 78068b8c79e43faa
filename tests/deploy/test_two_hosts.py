"""Two hosts, one PostgreSQL, one storage: two gunicorn instances on two ports, as behind a load balancer.

A browser logs in on one host and carries on on the other; a logout on one is refused on the other at once; a
role change made on one applies on both; and the audit trail both hosts wrote is one sealed, intact chain.
Nothing about users, sessions, roles or unread counts is cached in a process (docs/deploy.md, "Several hosts").
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest
import requests
from sqlalchemy import func, select, text

from review_portal.audit import chain
from review_portal.audit.models import AuditEvent
from tests.conftest import PASSWORD, TOTP_SECRET
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SEAL_INTERVAL = 0.5


@pytest.fixture
def app(pg_app):
    return pg_app  # one PostgreSQL shared by both hosts


@pytest.fixture
def hosts(app, users, tmp_path):
    env = dict(os.environ, PORTAL_CONFIG="development", SECRET_KEY=secrets.token_hex(32),
               DATABASE_URL=app.config["DATABASE_URL"], STORAGE_DIR=app.config["STORAGE_DIR"],
               GUNICORN_WORKERS="2", GUNICORN_THREADS="2", SANDBOX_WORKERS="1", LOG_LEVEL="WARNING",
               AUDIT_SEAL_INTERVAL_SECONDS=str(SEAL_INTERVAL), SPOOL_SWEEP_ON_START="1")
    procs, urls = [], []
    try:
        for name in ("host-a", "host-b"):
            port = free_port()
            procs.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                env=dict(env, GUNICORN_BIND=f"127.0.0.1:{port}", PORTAL_HOST_ID=name)))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 120
        for url, proc in zip(urls, procs):
            while True:
                try:
                    if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not become ready"
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def _csrf(browser, url):
    page = browser.get(url, timeout=30)
    assert page.status_code == 200, (url, page.status_code)
    return CSRF.search(page.text).group(1)


def _log_in(app, browser, host, email):
    with app.extensions["db_engine"].begin() as conn:  # a second login in the same 30 s is no TOTP replay here
        conn.execute(text("UPDATE users SET totp_last_step = NULL WHERE email = :e"), {"e": email})
    r = browser.post(f"{host}/login", data={"csrf_token": _csrf(browser, f"{host}/login"), "email": email,
                                            "password": PASSWORD}, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:500]
    if r.headers["Location"].endswith("/login/mfa"):
        r = browser.post(f"{host}/login/mfa", data={"csrf_token": _csrf(browser, f"{host}/login/mfa"),
                                                    "code": pyotp.TOTP(TOTP_SECRET).now()},
                         allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/login" not in r.headers["Location"], r.headers.get("Location")


def _refused(browser, url) -> bool:
    r = browser.get(url, allow_redirects=False, timeout=30)
    return r.status_code == 302 and "/login" in r.headers["Location"]


def test_two_hosts_share_logins_logouts_roles_and_one_audit_chain(app, db, users, hosts):
    a, b = hosts
    # Logged in on host A, the same browser carries on on host B (one cookie, as behind a load balancer).
    browser = requests.Session()
    _log_in(app, browser, a, users["referring"].email)
    page = browser.get(f"{b}/cases", allow_redirects=False, timeout=30)
    assert page.status_code == 200 and users["referring"].name in page.text
    stolen = browser.cookies.copy()

    # Logged out on host B: refused on host A at once, also for a copy of the cookie taken before.
    r = browser.post(f"{b}/logout", data={"csrf_token": _csrf(browser, f"{b}/cases")}, allow_redirects=False,
                     timeout=30)
    assert r.status_code == 302
    assert _refused(browser, f"{a}/cases")
    replay = requests.Session()
    replay.cookies.update(stolen)
    assert _refused(replay, f"{a}/cases") and _refused(replay, f"{b}/cases")

    # A reviewer works on host A; an administrator on host B makes them a coordinator: every session of theirs
    # ends on both hosts at once, and their next login has the new role wherever it lands.
    reviewer, admin = requests.Session(), requests.Session()
    _log_in(app, reviewer, a, users["reviewer"].email)
    assert reviewer.get(f"{a}/cases", allow_redirects=False, timeout=30).status_code == 200
    assert reviewer.get(f"{b}/dashboard", allow_redirects=False, timeout=30).status_code in (403, 404)  # not staff
    _log_in(app, admin, b, users["admin"].email)
    r = admin.post(f"{b}/admin/users/{users['reviewer'].id}/role",
                   data={"csrf_token": _csrf(admin, f"{b}/admin/users"), "role": "coordinator"},
                   allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:500]
    assert _refused(reviewer, f"{a}/cases") and _refused(reviewer, f"{b}/cases")
    _log_in(app, reviewer, b, users["reviewer"].email)
    assert reviewer.get(f"{a}/dashboard", allow_redirects=False, timeout=30).status_code == 200
    assert reviewer.get(f"{b}/dashboard", allow_redirects=False, timeout=30).status_code == 200

    # The unread count is never a copy in a process: a notification written elsewhere shows on both hosts, and
    # marking it read on one clears it on the other.
    from review_portal.clock import utcnow
    from review_portal.notifications.services import notify

    def unread(host) -> int:
        found = re.search(r'class="unread-count" aria-label="(\d+) unread"', reviewer.get(f"{host}/cases", timeout=30).text)
        return int(found.group(1)) if found else 0

    before = unread(a)  # the role change told them already (account security)
    assert unread(b) == before
    notify(db, users["reviewer"], kind="message", text="A question about your case", now=utcnow())
    db.commit()
    assert unread(a) == unread(b) == before + 1
    r = reviewer.post(f"{a}/notifications/read", data={"csrf_token": _csrf(reviewer, f"{a}/notifications")},
                      allow_redirects=False, timeout=30)
    assert r.status_code == 302
    assert unread(b) == unread(a) == 0

    # The public /verify limit (30 per 10 minutes per address) is counted by both hosts together.
    public = requests.Session()
    codes = [public.get(f"{(a, b)[i % 2]}/verify", params={"code": "AAAA-AAAA-AAAA-AAAA"}, timeout=30).status_code
             for i in range(31)]
    assert codes == [200] * 30 + [429], codes

    # Both hosts wrote audit events; their sealers chained all of them into one intact chain within the window.
    deadline = time.monotonic() + SEAL_INTERVAL + 10
    while True:
        db.expire_all()
        unsealed = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None)))
        db.rollback()
        if not unsealed:
            break
        assert time.monotonic() < deadline, f"{unsealed} events still unsealed"
        time.sleep(0.1)
    actions = set(db.scalars(select(AuditEvent.action)))
    assert {"login.succeeded", "logout", "user.role_changed"} <= actions, actions
    verdict = chain.verify(db, anchors=chain.load_anchors(app.extensions["storage"]))
    assert verdict.ok and verdict.unsealed == 0 and verdict.anchor is not None, verdict.problem
