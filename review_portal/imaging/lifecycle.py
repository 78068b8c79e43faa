"""The state machine of a scan upload being read (IngestJob).

    queued → running → done
    running → running   (a job interrupted while running resumes after the last file it reported)
    running → failed    (declared for a job that cannot finish; no step sets it yet: a read that raises
                         rolls back with the request or the worker's transaction and stays queued/running)

The job is created queued (a new row, not a move). Every later change goes through `set_status`, which
checks the table. Uploads are audited once, when the read finishes ("scans.ingested"), by the caller.
"""
from __future__ import annotations

from enum import StrEnum

from review_portal.errors import IllegalTransition


class IngestStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


STATUS_LABELS = {
    IngestStatus.QUEUED: "Waiting to be read",
    IngestStatus.RUNNING: "Reading the scans",
    IngestStatus.DONE: "Finished",
    IngestStatus.FAILED: "Failed",
}
FINISHED_STATUSES = frozenset({IngestStatus.DONE, IngestStatus.FAILED})

TRANSITIONS: dict[IngestStatus, frozenset[IngestStatus]] = {
    IngestStatus.QUEUED: frozenset({IngestStatus.RUNNING}),
    IngestStatus.RUNNING: frozenset({IngestStatus.RUNNING, IngestStatus.DONE, IngestStatus.FAILED}),
    IngestStatus.DONE: frozenset(),
    IngestStatus.FAILED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return IngestStatus(target) in TRANSITIONS[IngestStatus(current)]


def set_status(job, target: IngestStatus) -> None:
    current, target = IngestStatus(job.status), IngestStatus(target)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"Upload {job.id} is {STATUS_LABELS[current].lower()}; "
                                f"it cannot be marked {STATUS_LABELS[target].lower()}.")
    job.status = target.value
