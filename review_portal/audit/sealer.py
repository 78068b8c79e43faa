"""The periodic sealer: chains the audit trail off the request path, in every process of the portal.

Requests (and jobs, and CLI commands) write their audit events in their own transaction and commit; none of
them waits for the hash chain. A daemon thread in each process seals every AUDIT_SEAL_INTERVAL_SECONDS
(audit.chain.seal: serialised by the PostgreSQL advisory lock across hosts, by the write lock on SQLite), so a
committed event stays unsealed for at most that interval plus the time one seal takes, whichever process or
host wrote it: any sealer chains every host's events. At a normal exit the process seals once more.

A gunicorn worker forked from a preloaded master does not inherit the master's thread: `ensure_running()` (called
by the app factory and before each request, a comparison of process ids) starts one in the process it runs in.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time

from review_portal.audit.chain import seal

log = logging.getLogger(__name__)


class Sealer:
    def __init__(self, engine, anchor_store, interval: float):
        self.engine, self.anchor_store, self.interval = engine, anchor_store, float(interval)
        self._pid: int | None = None
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self.thread: threading.Thread | None = None
        self._last_warning = 0.0

    def ensure_running(self) -> None:
        if self.interval <= 0 or self._pid == os.getpid():
            return
        with self._guard:
            if self._pid == os.getpid():
                return
            self._stop = threading.Event()
            self.thread = threading.Thread(target=self._run, args=(self._stop,), name="audit-sealer", daemon=True)
            self._pid = os.getpid()
            self.thread.start()
            atexit.register(self._at_exit)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.seal_now()

    def seal_now(self) -> int:
        """One seal (and anchor) now; a failure is logged and the next tick retries."""
        try:
            return seal(self.engine, anchor_store=self.anchor_store)
        except Exception as exc:  # the database is away: say so once a minute, not every tick
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("periodic audit seal failed (%s); retrying every %.1f s", exc.__class__.__name__,
                            self.interval)
            return 0

    def _at_exit(self) -> None:
        """The last seal of this process, after its thread has stopped (never two seals racing at shutdown)."""
        self._stop.set()
        if self.thread is not None and self._pid == os.getpid():
            self.thread.join(timeout=5)
        if self._pid == os.getpid():
            try:  # quietly: logging may already be shut down, and any other process's sealer chains these later
                seal(self.engine, anchor_store=self.anchor_store)
            except Exception:  # noqa: S110  # nosec B110: at exit; another process's sealer chains these rows later
                pass

    def stop(self) -> None:
        atexit.unregister(self._at_exit)
        self._stop.set()
        if self.thread is not None and self._pid == os.getpid():
            self.thread.join(timeout=5)
        self._pid = None


def init_app(app) -> Sealer:
    sealer = Sealer(app.extensions["db_engine"], app.extensions["storage"],
                    float(app.config.get("AUDIT_SEAL_INTERVAL_SECONDS", 2.0)))
    app.extensions["audit_sealer"] = sealer
    sealer.ensure_running()
    app.before_request(sealer.ensure_running)
    return sealer
