"""Backup verification: every stored object still matches its sha256, and every database
reference to a blob points at an object that exists. Run after each restore (and nightly)."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

import review_portal.models  # noqa: F401  (registers every table)
from review_portal.db import Base

# Columns holding a storage key. By convention *_key/blob columns; documents are keyed by their sha256.
_EXTRA_REFERENCES = {("documents", "sha256")}


def blob_reference_columns():
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if column.name in ("blob_key", "thumbnail_key", "png_key") or column.name.endswith("_blob_key") \
                    or (table.name, column.name) in _EXTRA_REFERENCES:
                yield table, column


@dataclass
class BackupReport:
    objects_checked: int = 0
    references_checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "table.column id=N -> key"
    unreferenced: int = 0

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing


def verify_backup(db, storage) -> BackupReport:
    report = BackupReport()
    stored = set()
    for key in storage.iter_keys():
        report.objects_checked += 1
        try:
            intact = storage.verify(key)
        except FileNotFoundError:
            continue  # removed while the check ran: a reference to it is reported missing below
        stored.add(key)
        if not intact:
            report.corrupt.append(key)
    referenced = set()
    for table, column in blob_reference_columns():
        pk = list(table.primary_key.columns)[0]
        for row_id, key in db.execute(select(pk, column).where(column.is_not(None))):
            report.references_checked += 1
            referenced.add(key)
            if key not in stored:
                report.missing.append(f"{table.name}.{column.name} id={row_id} -> {key}")
    report.unreferenced = len(stored - referenced)
    return report
