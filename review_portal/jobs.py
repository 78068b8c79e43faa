"""Background work through one interface: inline in the embedded default, RQ on Redis when configured.

A job is a row (`BackgroundJob`) naming a registered handler and its plain keyword arguments
(ids and strings, never ORM objects), so the database, not the queue, is the record of what
was asked, how often it was tried and why it failed. Redis only carries the job id.

    submit(db, storage, "letters.issue", now=now, case_id=case.id, opinion_id=opinion.id, ...)

* Inline (no REDIS_URL): the handler runs at once inside a savepoint of the caller's
  transaction; a failure is retried up to `max_attempts` times, then the job is marked failed
  with its reason and the caller's transaction carries on.
* RQ: the id is pushed to Redis after the caller's transaction commits (the worker must see the
  row). The worker runs the handler in one transaction while holding the job row locked
  (SELECT ... FOR UPDATE SKIP LOCKED), and marks it done in that same transaction. A worker
  killed mid-job therefore leaves nothing half-written: PostgreSQL rolls the transaction back
  and releases the lock, and `requeue_abandoned` hands the job to another worker. Handlers must
  be idempotent (safe to run again after a crash), which they are by checking their result row.

Handlers: `@handler("name")` on `fn(db, storage, *, now, **params) -> str | None`.
"""
from __future__ import annotations

import importlib
import json
import logging
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Callable

from sqlalchemy import ForeignKey, Integer, String, Text, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from review_portal import storage as storage_mod
from review_portal.clock import utcnow
from review_portal.db import Base, UTCDateTime
from review_portal.db import session as scoped
from review_portal.errors import DomainError

log = logging.getLogger("review_portal.jobs")



class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


QUEUED, RUNNING, DONE, FAILED = (s.value for s in JobStatus)
STATUS_LABELS = {JobStatus.QUEUED: "Waiting", JobStatus.RUNNING: "In progress", JobStatus.DONE: "Done",
                 JobStatus.FAILED: "Failed"}
FINISHED_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED})

# Every change of a job's status goes through `set_status`, against this table.
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # queued → done / failed: run inline, which needs no "running" mark (the caller's transaction covers it).
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.DONE, JobStatus.FAILED}),
    # running → running: a second delivery of the same id (re-dispatched while waiting) picks it up again;
    # running → queued: a retry after a failed attempt, or `requeue_abandoned` after a worker died.
    JobStatus.RUNNING: frozenset({JobStatus.RUNNING, JobStatus.DONE, JobStatus.FAILED, JobStatus.QUEUED}),
    JobStatus.DONE: frozenset(),
    JobStatus.FAILED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return JobStatus(target) in JOB_TRANSITIONS[JobStatus(current)]


def set_status(job: "BackgroundJob", target: JobStatus) -> None:
    from review_portal.errors import IllegalTransition

    current, target = JobStatus(job.status), JobStatus(target)
    if target not in JOB_TRANSITIONS[current]:
        raise IllegalTransition(f"Background job {job.id} ({job.name}) is {STATUS_LABELS[current].lower()}; "
                                f"it cannot be marked {STATUS_LABELS[target].lower()}.")
    job.status = target.value
DEFAULT_MAX_ATTEMPTS = 3
_PENDING = "portal_pending_jobs"


class BackgroundJob(Base):
    __tablename__ = "background_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    params: Mapped[str] = mapped_column(Text, default="{}")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_ATTEMPTS)
    error: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def is_done(self) -> bool:
        return self.status == JobStatus.DONE

    @property
    def is_failed(self) -> bool:
        return self.status == JobStatus.FAILED

    @property
    def kwargs(self) -> dict:
        return json.loads(self.params or "{}")


class PermanentJobError(Exception):
    """A failure that retrying cannot fix (bad input, record gone): fail at once."""


_HANDLERS: dict[str, Callable] = {}


def handler(name: str):
    def register(fn):
        _HANDLERS[name] = fn
        return fn
    return register


def load_handlers(extra: tuple[str, ...] | list[str] = ()) -> None:
    """Import further handler modules named in config (JOB_MODULES); the portal's own are registered by
    the app factory importing review_portal.tasks (core names no domain module)."""
    for module in extra:
        if module:
            importlib.import_module(module)


def _check_plain(params: dict) -> None:
    for key, value in params.items():
        if not isinstance(value, (int, float, str, bool, type(None), list, dict)):
            raise TypeError(f"job argument {key!r} must be a plain value (an id, not {type(value).__name__})")
    json.dumps(params)


# -- runners -------------------------------------------------------------------------------------

class InlineRunner:
    name = "inline"

    def submitted(self, db: Session, storage, job: BackgroundJob, now: datetime) -> None:
        run_inline(db, storage, job, now=now)

    def dispatch(self, job_ids: list[int]) -> None:  # nothing waits in a queue
        pass

    def check_ready(self) -> None:
        pass


# What RQ imports and calls in the worker: an entry point above core, since it builds the app.
WORKER_ENTRY = "review_portal.worker.execute"


class RQRunner:
    name = "rq"

    def __init__(self, redis_url: str, queue_name: str = "portal", job_timeout: int = 900):
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(redis_url)
        self.queue = Queue(queue_name, connection=self.redis, default_timeout=job_timeout)

    def submitted(self, db: Session, storage, job: BackgroundJob, now: datetime) -> None:
        # Push only after commit: a worker must never look for a row it cannot see yet.
        db.info.setdefault(_PENDING, []).append(job.id)

    def dispatch(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self.queue.enqueue(WORKER_ENTRY, job_id, result_ttl=3600, failure_ttl=7 * 86400)

    def check_ready(self) -> None:
        self.redis.ping()


def runner_from_config(config):
    if config.get("REDIS_URL"):
        return RQRunner(config["REDIS_URL"], config.get("JOB_QUEUE", "portal"))
    return InlineRunner()


def _current_runner():
    """The app's runner; outside an application (scripts, fixtures) jobs run inline."""
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app.extensions.get("jobs") or InlineRunner()
    return InlineRunner()


def init_app(app) -> None:
    load_handlers(app.config.get("JOB_MODULES") or ())
    app.extensions["jobs"] = runner_from_config(app.config)


@event.listens_for(scoped.session_factory, "after_commit")
def _dispatch_after_commit(sess: Session) -> None:
    pending = sess.info.pop(_PENDING, None)
    if pending:
        _current_runner().dispatch(pending)


@event.listens_for(scoped.session_factory, "after_rollback")
def _forget_after_rollback(sess: Session) -> None:
    sess.info.pop(_PENDING, None)


# -- the interface -------------------------------------------------------------------------------

def submit(db: Session, storage, name: str, /, *, now: datetime, case_id: int | None = None,
           max_attempts: int = DEFAULT_MAX_ATTEMPTS, **params) -> BackgroundJob:
    """Record a job and run it (inline) or queue it (RQ, after commit). Returns the job row."""
    if name not in _HANDLERS:
        raise KeyError(f"no job handler named {name!r}")
    if case_id is not None:
        params["case_id"] = case_id  # handlers receive it too; the column lets the case page list its jobs
    _check_plain(params)
    job = BackgroundJob(name=name, params=json.dumps(params, sort_keys=True), case_id=case_id, status=QUEUED,
                        attempts=0, max_attempts=max(1, max_attempts), error="", result="", created_at=now)
    db.add(job)
    db.flush()
    _current_runner().submitted(db, storage, job, now)
    return job


def jobs_for_case(db: Session, case_id: int) -> list[BackgroundJob]:
    return list(db.scalars(select(BackgroundJob).where(BackgroundJob.case_id == case_id).order_by(BackgroundJob.id)))


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]


def run_inline(db: Session, storage, job: BackgroundJob, *, now: datetime) -> None:
    fn = _HANDLERS[job.name]
    job.started_at = now
    while job.attempts < job.max_attempts:
        job.attempts += 1
        savepoint = db.begin_nested()
        try:
            result = fn(db, storage, now=now, **job.kwargs)
            db.flush()
            savepoint.commit()
        except Exception as exc:  # noqa: BLE001 - any failure is recorded with its reason
            savepoint.rollback()
            job.error = _reason(exc)
            log.warning("job %s (%s) attempt %s failed: %s", job.id, job.name, job.attempts, job.error)
            if isinstance(exc, (PermanentJobError, DomainError)):
                break
            continue
        set_status(job, JobStatus.DONE)
        job.result, job.error, job.finished_at = str(result or "")[:2000], "", now
        db.flush()
        return
    set_status(job, JobStatus.FAILED)
    job.finished_at = now
    db.flush()


# -- the worker side (RQ) ------------------------------------------------------------------------

def execute(job_id: int, app) -> str:
    """Run one job once, idempotently, in `app`. Safe to call twice for the same id.

    RQ calls review_portal.worker.execute, which builds the app once per worker process and calls this.
    """

    with app.app_context():
        db = scoped()
        storage = app.extensions["storage"]
        try:
            # Mark it visible as running (its own short transaction) for the user's progress view.
            job = db.get(BackgroundJob, job_id)
            if job is None or job.status in FINISHED_STATUSES:
                return "nothing to do"
            set_status(job, JobStatus.RUNNING)
            job.started_at = utcnow()
            db.commit()

            # The work and its "done" mark commit together, under the row lock.
            job = db.scalar(select(BackgroundJob).where(BackgroundJob.id == job_id)
                            .with_for_update(skip_locked=True))
            if job is None:
                db.rollback()
                return "another worker holds this job"
            if job.status in FINISHED_STATUSES:
                db.rollback()
                return "nothing to do"
            storage_mod.begin_journal()
            now = utcnow()
            try:
                result = _HANDLERS[job.name](db, storage, now=now, **job.kwargs)
                job.attempts += 1
                set_status(job, JobStatus.DONE)
                job.result, job.error, job.finished_at = str(result or "")[:2000], "", now
                db.commit()
                storage_mod.end_journal()
                return "done"
            except Exception as exc:  # noqa: BLE001
                db.rollback()
                storage_mod.discard_journaled(storage, storage_mod.end_journal(), engine=app.extensions["db_engine"],
                                              referenced=app.extensions["blob_referenced"])
                permanent = isinstance(exc, (PermanentJobError, DomainError))
                error = _reason(exc)
                log.warning("job %s failed: %s", job_id, error)
            job = db.scalar(select(BackgroundJob).where(BackgroundJob.id == job_id).with_for_update())
            if job.status in FINISHED_STATUSES:  # another delivery of the same id finished it meanwhile
                db.rollback()
                return "nothing to do"
            job.attempts += 1
            job.error = error
            if permanent or job.attempts >= job.max_attempts:
                set_status(job, JobStatus.FAILED)
                job.finished_at = utcnow()
                db.commit()
                return "failed"
            if job.status != JobStatus.QUEUED:  # `requeue_abandoned` may have queued it already
                set_status(job, JobStatus.QUEUED)
            db.commit()
            _requeue_here(app, job_id)
            return "retry queued"
        finally:
            scoped.remove()


def _requeue_here(app, job_id: int) -> None:
    """Put the retry back on the queue this job came from."""
    from rq import Queue, get_current_job

    current = get_current_job()
    if current is not None:
        Queue(current.origin, connection=current.connection).enqueue(
            WORKER_ENTRY, job_id, result_ttl=3600, failure_ttl=7 * 86400)
    else:
        app.extensions["jobs"].dispatch([job_id])


def requeue_abandoned(db: Session, *, now: datetime, waiting_longer_than: timedelta = timedelta(minutes=10)) -> list[int]:
    """Re-dispatch jobs whose worker died (running, but nobody holds the row lock) and jobs waiting too long.

    Run it from cron / a systemd timer every few minutes (`flask jobs-requeue`), and after restarting workers.
    """
    rows = db.scalars(
        select(BackgroundJob).where(BackgroundJob.status.in_([QUEUED, RUNNING])).order_by(BackgroundJob.id)
        .with_for_update(skip_locked=True)
    ).all()
    ids = [j.id for j in rows if j.status == RUNNING or j.created_at < now - waiting_longer_than]
    for job in rows:
        if job.id in ids and job.status == JobStatus.RUNNING:
            set_status(job, JobStatus.QUEUED)
    db.commit()
    _current_runner().dispatch(ids)
    return ids
