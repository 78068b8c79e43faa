"""Scale-out without shared process state: the /verify limiter counts across every worker and host (database, or
Redis when configured), and no host's spool sweep removes another host's upload in flight."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from config import TestConfig
from review_portal import create_app
from review_portal.ratelimit import SharedRateLimiter

ROOT = Path(__file__).resolve().parents[2]
CODE = "AAAA-AAAA-AAAA-AAAA"


def _second_host(app, tmp_path, **overrides):
    """Another app process on the same database and store: what a second host is to the first."""
    return create_app(TestConfig, DATABASE_URL=app.config["DATABASE_URL"], STORAGE_DIR=app.config["STORAGE_DIR"],
                      SPOOL_SWEEP_ON_START=False, **overrides)


def test_the_verify_limit_counts_requests_on_every_host_together(app, db, tmp_path):
    app.config["VERIFY_RATE_LIMIT"] = 4
    other = _second_host(app, tmp_path, VERIFY_RATE_LIMIT=4)
    try:
        hosts = [app.test_client(), other.test_client()]
        for i in range(4):  # two on each host: four in all
            assert hosts[i % 2].get(f"/verify?code={CODE}").status_code == 200
        for client in hosts:  # each host alone has seen two; together they have seen the limit
            limited = client.get(f"/verify?code={CODE}")
            assert limited.status_code == 429 and "Too many checks" in limited.get_data(as_text=True)
        # The refused checks were counted although their requests failed (their own short transaction).
        assert app.extensions["rate_limiter"].hits("verify", "127.0.0.1", 600.0) == 6
        # Another address has its own count.
        assert hosts[1].get(f"/verify?code={CODE}", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    finally:
        other.extensions["db_engine"].dispose()


def test_a_window_is_forgotten_when_it_is_over(app):
    limiter = app.extensions["rate_limiter"]
    t0 = 1_000_000.0
    assert all(limiter.allow("verify", "10.0.0.9", 2, 60, now=t0 + i) for i in range(2))
    assert not limiter.allow("verify", "10.0.0.9", 2, 60, now=t0 + 5)
    assert limiter.allow("verify", "10.0.0.9", 2, 60, now=t0 + 61)  # the next window
    from sqlalchemy import func, select

    from review_portal.ratelimit import RateLimitHit

    with app.extensions["db_engine"].connect() as conn:  # old windows are deleted, not kept forever
        assert limiter.allow("verify", "10.0.0.9", 2, 60, now=t0 + 200)
        assert conn.scalar(select(func.count()).select_from(RateLimitHit)) == 1


def test_the_limit_is_shared_through_redis_when_it_is_configured(app, redis_server):
    hosts = [SharedRateLimiter(app.extensions["db_engine"], redis_server) for _ in range(2)]
    key = f"10.9.9.{os.getpid() % 250}"
    assert [hosts[i % 2].allow("verify", key, 3, 600) for i in range(5)] == [True, True, True, False, False]
    assert hosts[0].hits("verify", key, 600) == 5
    from sqlalchemy import func, select

    from review_portal.ratelimit import RateLimitHit

    with app.extensions["db_engine"].connect() as conn:
        assert conn.scalar(select(func.count()).select_from(RateLimitHit)) == 0  # Redis only


# --- spool sweeps -------------------------------------------------------------------------------------------

HOLDER = """
import sys
from review_portal.storage import LocalStorage
store = LocalStorage(sys.argv[1])
workdir = store.workdir()
(workdir / "scan-0").write_bytes(b"half an upload")
print(workdir, flush=True)
sys.stdin.readline()
store.remove_workdir(workdir) if sys.argv[2] == "tidy" else None
"""


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    for p in [*path.rglob("*"), path]:
        os.utime(p, (old, old))


def test_a_sweep_never_removes_an_upload_another_host_still_writes(storage, tmp_path):
    # Another host (its own host id, its own process) holds a scratch directory in the shared store.
    env = dict(os.environ, PORTAL_HOST_ID="other-host")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(storage.root), "crash"], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        workdir = Path(holder.stdout.readline().strip())
        assert workdir.name.startswith("other-host-") and workdir.exists()
        _age(workdir, 7 * 3600)  # a stalled upload: nothing changed for longer than the longest upload
        assert storage.sweep_tmp(max_age_seconds=3600) == 0
        assert (workdir / "scan-0").exists()
        # Its own uploads in this process are safe too, however old they look.
        mine = storage.workdir()
        _age(mine, 7 * 3600)
        assert storage.sweep_tmp(max_age_seconds=3600) == 0 and mine.exists()
        storage.remove_workdir(mine)
    finally:
        holder.stdin.write("go\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    # The other host crashed without tidying up: its lock went with its process, so the leftover goes.
    assert workdir.exists()
    assert storage.sweep_tmp(max_age_seconds=3600) == 1 and not workdir.exists()
