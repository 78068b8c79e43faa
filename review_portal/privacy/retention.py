"""Retention: remove a closed case's files and rows once RETENTION_DAYS have passed since it closed.

The audit trail stays (audit events hold the case reference and patient as text, and no foreign key),
so the accounting of disclosures still answers after the purge. The purge then checks the blob store
and reports any file still present; the command fails if one is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from review_portal.assignment.models import Assignment
from review_portal.audit.services import record
from review_portal.cases.models import Case, Document, HistoryEntry
from review_portal.db import Base
from review_portal.imaging.models import Instance, Series, Study
from review_portal.letters.models import Letter
from review_portal.opinions.models import Opinion
from review_portal.storage import LocalStorage

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KNOWN = {"cases", "history_entries", "documents", "studies", "series", "instances", "assignments", "opinions", "letters"}


@dataclass
class PurgeReport:
    cases: list[str] = field(default_factory=list)
    blobs_deleted: int = 0
    blobs_kept_shared: int = 0
    leftovers: list[str] = field(default_factory=list)
    candidate_keys: set[str] = field(default_factory=set)


def due_for_purge(db: Session, *, now: datetime, retention_days: int) -> list[Case]:
    cutoff = now - timedelta(days=retention_days)
    return list(db.scalars(select(Case).where(Case.status.in_(["closed", "withdrawn"]), Case.closed_at.is_not(None),
                                              Case.closed_at < cutoff).order_by(Case.id)))


def _blob_columns():
    """(table, column) pairs that hold blob keys, including tables other parts of the portal add later."""
    for table in Base.metadata.sorted_tables:
        for col in table.columns:
            if col.name in ("blob_key", "sha256", "thumbnail_key") or col.name.endswith("_blob_key"):
                yield table, col


def _keys_of_case(db: Session, case_id: int) -> set[str]:
    series_ids = select(Series.id).join(Study).where(Study.case_id == case_id)
    keys = set(db.scalars(select(Document.sha256).where(Document.case_id == case_id)))
    keys |= set(db.scalars(select(Instance.blob_key).where(Instance.series_id.in_(series_ids))))
    keys |= {k for k in db.scalars(select(Series.thumbnail_key).where(Series.id.in_(series_ids))) if k}
    keys |= set(db.scalars(select(Letter.blob_key).where(Letter.case_id == case_id)))
    for table, col in _blob_columns():
        if table.name not in _KNOWN and "case_id" in table.c:
            keys |= {k for k in db.execute(select(col).where(table.c.case_id == case_id)).scalars() if k}
    return {k for k in keys if k and _HEX64.match(k)}


def _still_referenced(db: Session, key: str) -> bool:
    for table, col in _blob_columns():
        if db.execute(select(col).where(col == key).limit(1)).first() is not None:
            return True
    return False


def purge_case(db: Session, case: Case, *, by, ip: str, now: datetime, report: PurgeReport) -> None:
    keys = _keys_of_case(db, case.id)
    record(db, action="case.purged", by=by, ip=ip, now=now, case=case, object_type="case", object_id=case.id,
           detail=f"retention purge; closed {case.closed_at:%Y-%m-%d}; files={len(keys)}")
    series_ids = select(Series.id).join(Study).where(Study.case_id == case.id)
    # Tables added by other parts of the portal that point at the case go first.
    for table in reversed(Base.metadata.sorted_tables):
        if table.name not in _KNOWN and "case_id" in table.c and table.name not in ("audit_events", "emergency_access"):
            db.execute(delete(table).where(table.c.case_id == case.id))
    db.execute(delete(Letter).where(Letter.case_id == case.id))
    db.execute(delete(Opinion).where(Opinion.case_id == case.id))
    db.execute(delete(Assignment).where(Assignment.case_id == case.id))
    db.execute(delete(Instance).where(Instance.series_id.in_(series_ids)))
    db.execute(delete(Series).where(Series.id.in_(select(Series.id).join(Study).where(Study.case_id == case.id))))
    db.execute(delete(Study).where(Study.case_id == case.id))
    db.execute(delete(HistoryEntry).where(HistoryEntry.case_id == case.id))
    db.execute(delete(Document).where(Document.case_id == case.id))
    db.execute(delete(Case).where(Case.id == case.id).execution_options(synchronize_session=False))
    db.flush()
    report.cases.append(case.reference)
    report.candidate_keys |= keys


def purge(db: Session, *, now: datetime, retention_days: int, by=None, ip: str = "cli") -> PurgeReport:
    """Remove the rows (the caller commits), then call delete_files() with the report."""
    report = PurgeReport()
    for case in due_for_purge(db, now=now, retention_days=retention_days):
        purge_case(db, case, by=by, ip=ip, now=now, report=report)
    return report


def delete_files(db: Session, storage: LocalStorage, report: PurgeReport) -> PurgeReport:
    """After the rows are committed: remove each file nothing refers to any more, then prove it is gone."""
    for key in sorted(report.candidate_keys):
        if _still_referenced(db, key):
            report.blobs_kept_shared += 1  # the same bytes belong to another case too (content-addressed)
            continue
        storage.delete(key)
        report.blobs_deleted += 1
        if storage.exists(key):
            report.leftovers.append(key)
    return report
