"""Retention: remove a closed case's files and rows once RETENTION_DAYS have passed since it closed.

The audit trail stays (audit events hold the case reference and patient as text, and no foreign key),
so the accounting of disclosures still answers after the purge. The purge then checks the blob store
and reports any file still present; the command fails if one is.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, event, or_, select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.cases.lifecycle import TERMINAL_STATUSES
from review_portal.cases.models import Case
from review_portal.db import Base
from review_portal.storage import Storage

log = logging.getLogger("review_portal.privacy")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Kept on purpose: the audit trail and the emergency-access grants are the accounting of who saw the case.
# Neither has a foreign key to it, so nothing below would reach them anyway; this says so out loud.
_KEPT = {"audit_events", "emergency_access"}
# Which columns refer to stored files is not listed here: the caller passes the portal's one list,
# review_portal.models.BLOB_REFERENCES (each with .table, .column and, for JSON lists, .json_key), and
# delete_files() asks `review_portal.models.blob_is_referenced` (passed as `referenced`) before deleting.
# Derived bytes (thumbnails) are among those references and go with the case; verified local copies of
# S3 objects go with storage.delete().


@dataclass
class PurgeReport:
    cases: list[str] = field(default_factory=list)
    blobs_deleted: int = 0
    blobs_kept_shared: int = 0
    leftovers: list[str] = field(default_factory=list)
    candidate_keys: set[str] = field(default_factory=set)


def due_for_purge(db: Session, *, now: datetime, retention_days: int) -> list[Case]:
    cutoff = now - timedelta(days=retention_days)
    # Every final state, cancelled included: a cancelled case holds the same patient data as a closed one.
    return list(db.scalars(select(Case).where(Case.status.in_([s.value for s in TERMINAL_STATUSES]),
                                              Case.closed_at.is_not(None),
                                              Case.closed_at < cutoff).order_by(Case.id)))


def _owned_rows(case_id: int) -> dict[Table, object]:
    return owned_rows(Case.__table__, case_id)


def owned_rows(root: Table, root_id: int) -> dict[Table, object]:
    """For every table holding rows that belong to the case: a WHERE clause selecting exactly those rows.

    Derived from the foreign keys, so a table another part of the portal adds later (a review, a message,
    a key image, an addendum, a letter...) is purged with the case without being listed here: a row belongs
    to the case when it points at the case, or at a row that belongs to the case (an instance -> its series
    -> its study -> the case). Users and institutions only point the other way and are never reached.
    The same walk from a study (`root`) finds its series, instances and key images (see purge_rows).
    """
    owned: dict[Table, object] = {}
    owned[root] = root.c.id == root_id
    for table in Base.metadata.sorted_tables:  # parents before children, so each parent's clause is known
        if table is root or table.name in _KEPT:
            continue
        clauses = []
        for fk in table.foreign_keys:
            parent = fk.column.table
            if parent is root:
                clauses.append(fk.parent == root_id)
            elif parent in owned:
                clauses.append(fk.parent.in_(select(fk.column).where(owned[parent])))
        if clauses:
            owned[table] = or_(*clauses)
    return owned


def _json_keys(value, name: str) -> set[str]:
    return {str(item.get(name, "")) for item in value or [] if isinstance(item, dict)}


def _keys_of_case(db: Session, owned: dict[Table, object], references) -> set[str]:
    keys: set[str] = set()
    for ref in references:
        table = Base.metadata.tables[ref.table]
        if table not in owned:
            continue
        values = db.execute(select(table.c[ref.column]).where(owned[table])).scalars()
        for value in values:
            keys |= _json_keys(value, ref.json_key) if ref.json_key else {value}
    return {k for k in keys if k and _HEX64.match(k)}


def purge_case(db: Session, case: Case, *, by, ip: str, now: datetime, report: PurgeReport, references) -> None:
    reference = case.reference
    owned = _owned_rows(case.id)
    keys = _keys_of_case(db, owned, references)
    record(db, action="case.purged", by=by, ip=ip, now=now, case=case, object_type="case", object_id=case.id,
           detail=f"retention purge; closed {case.closed_at:%Y-%m-%d}; files={len(keys)}")
    # Children before parents; each clause selects through parents that are still there.
    for table in reversed(Base.metadata.sorted_tables):
        if table in owned:
            db.execute(delete(table).where(owned[table]).execution_options(synchronize_session=False))
    db.flush()
    db.expunge(case)  # its row is gone; the session must not try to write it back
    report.cases.append(reference)
    report.candidate_keys |= keys


def purge_rows(db: Session, root: Table, root_id: int, *, references) -> set[str]:
    """Delete one row and every row that belongs to it (e.g. a study: its series, instances, key images);
    return the blob keys they referred to, for delete_files() once the deletion is committed."""
    owned = owned_rows(root, root_id)
    keys = _keys_of_case(db, owned, references)
    for table in reversed(Base.metadata.sorted_tables):
        if table in owned:
            db.execute(delete(table).where(owned[table]).execution_options(synchronize_session=False))
    db.flush()
    return keys


def purge(db: Session, *, now: datetime, retention_days: int, references, by=None, ip: str = "cli") -> PurgeReport:
    """Remove the rows (the caller commits), then call delete_files() with the report."""
    report = PurgeReport()
    for case in due_for_purge(db, now=now, retention_days=retention_days):
        purge_case(db, case, by=by, ip=ip, now=now, report=report, references=references)
    return report


def delete_files(db: Session, storage: Storage, report: PurgeReport, *, referenced) -> PurgeReport:
    """After the rows are committed: remove each file nothing refers to any more, then prove it is gone.
    `referenced(db, key)` is review_portal.models.blob_is_referenced."""
    for key in sorted(report.candidate_keys):
        if referenced(db, key):
            report.blobs_kept_shared += 1  # the same bytes belong to another case too (content-addressed)
            continue
        storage.delete(key)
        report.blobs_deleted += 1
        if storage.exists(key):
            report.leftovers.append(key)
    return report


# A request that removes rows (a wrong patient's study) deletes their files only once the removal is committed:
# before that a rollback would leave rows pointing at files already gone.
_PENDING = "privacy_delete_after_commit"


def delete_files_after_commit(db: Session, storage: Storage, keys: set[str], *, referenced) -> None:
    """Queue delete_files() for `keys`, to run when this session's transaction commits (forgotten on rollback)."""
    db.info.setdefault(_PENDING, []).append((storage, set(keys), referenced))


@event.listens_for(Session, "after_commit")
def _delete_after_commit(sess: Session) -> None:
    pending = sess.info.pop(_PENDING, None)
    if not pending:
        return
    with Session(bind=sess.get_bind()) as fresh:  # the committed state; the session itself cannot query here
        for storage, keys, referenced in pending:
            report = delete_files(fresh, storage, PurgeReport(candidate_keys=keys), referenced=referenced)
            log.info("removed study files: %d deleted, %d kept (shared)", report.blobs_deleted, report.blobs_kept_shared)
            if report.leftovers:
                log.error("removed study files still present: %s", ", ".join(report.leftovers))


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(sess: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:  # the outermost transaction, not a savepoint
        sess.info.pop(_PENDING, None)
