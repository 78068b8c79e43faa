"""The audit chain is sealed off the request path: every committed event is sealed within the window
(AUDIT_SEAL_INTERVAL_SECONDS plus one seal), whichever thread, process or host wrote it, and the chain that
results proves the whole trail. A writer that tries to seal after its commit never waits, and never seals when a
SAVEPOINT is released (on SQLite that would block on the outer transaction's write lock).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select

from review_portal.audit import chain
from review_portal.audit.models import AuditEvent
from review_portal.audit.services import record
from tests.conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.3
# The window is the interval plus one seal; on this shared 2-core machine a seal of a few hundred rows from a
# process that is still starting up can take a couple of seconds, so that is the slack allowed for it.
SEAL_SLACK = 4.0


def test_releasing_a_savepoint_does_not_seal_but_the_commit_tries(db, users, monkeypatch):
    calls = []
    real_seal = chain.seal
    monkeypatch.setattr(chain, "seal", lambda bind, **kw: calls.append(kw) or real_seal(bind, **kw))

    record(db, action="test.outer", by=users["admin"], ip="127.0.0.1", now=NOW)
    savepoint = db.begin_nested()
    record(db, action="test.inner", by=users["admin"], ip="127.0.0.1", now=NOW)
    db.flush()
    savepoint.commit()
    assert calls == []  # still inside the outer transaction

    db.commit()
    assert calls == [{"wait": False}]  # the writer never waits for the chain
    sealed = {e.action: e.seq for e in db.query(AuditEvent).filter(AuditEvent.action.like("test.%"))}
    assert sealed["test.outer"] is not None and sealed["test.inner"] is not None


def test_a_writer_skips_sealing_while_another_thread_seals(app, db, users):
    """The try after a commit returns at once when the chain is busy; the events stay for the next seal."""
    engine = app.extensions["db_engine"]
    record(db, action="test.busy", by=users["admin"], ip="127.0.0.1", now=NOW)
    chain._LOCK.acquire()  # another thread of this process is sealing
    try:
        started = time.monotonic()
        db.commit()
        assert time.monotonic() - started < 1
        assert db.scalar(select(AuditEvent.seq).where(AuditEvent.action == "test.busy")) is None
    finally:
        chain._LOCK.release()
    assert chain.seal(engine) >= 1
    db.expire_all()
    assert db.scalar(select(AuditEvent.seq).where(AuditEvent.action == "test.busy")) is not None


def test_a_writer_skips_sealing_while_another_host_seals_postgresql(pg_app):
    """Across processes the try is pg_try_advisory_xact_lock: another host holding the lock makes it skip at once."""
    from sqlalchemy import text

    from review_portal.db import session

    engine = pg_app.extensions["db_engine"]
    db = session()
    try:
        with engine.connect() as other_host:
            other_host.execute(text("SELECT pg_advisory_lock(:k)"), {"k": chain._ADVISORY_KEY})
            record(db, action="test.busy", by=None, ip="127.0.0.1", now=NOW)
            started = time.monotonic()
            db.commit()
            assert time.monotonic() - started < 5
            assert db.scalar(select(AuditEvent.seq).where(AuditEvent.action == "test.busy")) is None
            other_host.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": chain._ADVISORY_KEY})
            other_host.commit()
        assert chain.seal(engine) >= 1
        db.expire_all()
        assert db.scalar(select(AuditEvent.seq).where(AuditEvent.action == "test.busy")) is not None
    finally:
        db.close()


def test_a_request_does_not_seal_and_the_periodic_sealer_does_within_the_window(app, db, users, login_as,
                                                                                 monkeypatch):
    from review_portal.audit.sealer import Sealer

    monkeypatch.setitem(chain._after_commit, "mode", "off")  # production's default: only the periodic sealer

    c = login_as("reviewer")
    assert c.get("/cases").status_code == 200
    unsealed = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None)))
    assert unsealed > 0  # the login's events: committed, not sealed by the request
    sealer = Sealer(app.extensions["db_engine"], app.extensions["storage"], INTERVAL)
    sealer.ensure_running()
    try:
        _wait_until_sealed(app.extensions["db_engine"], time.monotonic())
    finally:
        sealer.stop()
    assert chain.verify(db).ok


# --- several processes writing at once, each with its own sealer ----------------------------------------------

WRITER = """
import sys
from config import TestConfig
from review_portal import create_app
from review_portal.audit.services import record
from review_portal.clock import utcnow
from review_portal.db import session

url, store, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
app = create_app(TestConfig, DATABASE_URL=url, STORAGE_DIR=store, AUDIT_SEAL_INTERVAL_SECONDS=INTERVAL,
                 AUDIT_SEAL_AFTER_COMMIT="off", SANDBOX_ENABLED=False, SPOOL_SWEEP_ON_START=False)
print("ready", flush=True)
sys.stdin.readline()  # every writer starts at the same moment
for i in range(n):
    record(session(), action="test.concurrent", by=None, ip="127.0.0.1", now=utcnow(), object_type="writer",
           object_id=f"{tag}-{i}")
    session.commit()
print("written", flush=True)
sys.stdin.readline()  # stay alive (and keep sealing) until the test has looked
""".replace("=INTERVAL,", f"={INTERVAL!r},")


def _wait_until_sealed(engine, since: float) -> float:
    """Seconds from `since` until no event is unsealed; fails past the window."""
    while True:
        with engine.connect() as conn:
            left = conn.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None)))
        waited = time.monotonic() - since
        if not left:
            return waited
        assert waited < INTERVAL + SEAL_SLACK, f"{left} events still unsealed after {waited:.1f} s"
        time.sleep(0.05)


def _run_writers(url: str, store: Path, writers: int = 3, rows: int = 40) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(store), f"w{k}", str(rows)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for k in range(writers)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", "a writer failed to start"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdout.readline().strip() == "written", "a writer failed"
        # Every writer is done and still running its sealer: each event must be sealed within the window.
        waited = _wait_until_sealed(create_engine(url), time.monotonic())
        print(f"\nall events sealed {waited:.2f} s after the last commit (interval {INTERVAL} s)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.stdin.write("stop\n")
                p.stdin.flush()
        for p in procs:
            p.wait(timeout=60)


def _check_chain(db, writers: int = 3, rows: int = 40) -> None:
    db.expire_all()
    verdict = chain.verify(db)
    assert verdict.ok and verdict.unsealed == 0, verdict.problem
    written = db.scalars(select(AuditEvent.object_id).where(AuditEvent.action == "test.concurrent")).all()
    assert sorted(written) == sorted(f"w{k}-{i}" for k in range(writers) for i in range(rows))
    seqs = db.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert seqs == list(range(1, len(seqs) + 1)) and verdict.checked == len(seqs)


def test_events_from_several_processes_are_all_sealed_within_the_window(app, db, tmp_path):
    _run_writers(app.config["DATABASE_URL"], tmp_path / "store")
    _check_chain(db)
    # `flask audit-verify` proves the whole chain, anchored by the sealers.
    result = app.test_cli_runner().invoke(args=["audit-verify"])
    assert result.exit_code == 0 and "intact" in result.output and "Checked against anchor" in result.output


def test_events_from_several_processes_are_all_sealed_within_the_window_postgresql(pg_app, tmp_path):
    from review_portal.db import session

    _run_writers(pg_app.config["DATABASE_URL"], tmp_path / "store")
    db = session()
    try:
        _check_chain(db)
    finally:
        db.close()
    # The sealers' anchors name the chain's head: nothing was cut off the tail.
    anchors = chain.load_anchors(pg_app.extensions["storage"])
    assert chain.verify(session(), anchors=anchors).ok and anchors


def test_a_sealer_started_before_a_fork_runs_again_in_the_child(app):
    """gunicorn preloads the app in its master and forks the workers: a thread does not survive a fork."""
    from review_portal.audit.sealer import Sealer

    sealer = Sealer(app.extensions["db_engine"], None, 60)
    sealer.ensure_running()
    first = sealer.thread
    sealer.ensure_running()
    assert sealer.thread is first and first.is_alive()
    first_stop = sealer._stop
    sealer._pid = -1  # what a forked child sees: the pid that started the thread is not its own
    sealer.ensure_running()
    assert sealer.thread is not first and sealer.thread.is_alive()
    sealer.stop()
    first_stop.set()
    first.join(timeout=5)
    assert not first.is_alive() and not sealer.thread.is_alive()
