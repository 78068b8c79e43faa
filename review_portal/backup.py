"""Backup verification: every stored object still matches its sha256, and every database
reference to a blob points at an object that exists. Run after each restore (and nightly).

The references are the portal's one list, review_portal.models.BLOB_REFERENCES: scans, thumbnails,
key-image PNGs, documents, letters and the sources an ingest job keeps. What a backup leaves out on
purpose: the temporary area (spooled uploads, scratch folders) and caches of derived bytes (the S3
backend's verified local copies under STORAGE_DIR/s3-cache, rendered slices under render-cache beside the
objects, decoded frames in memory); both are rebuilt on demand. The anchors/ log of the audit chain's head is
backed up with the objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from review_portal.models import iter_blob_references


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
    for ref, row_id, key in iter_blob_references(db):
        report.references_checked += 1
        referenced.add(key)
        if key not in stored:
            report.missing.append(f"{ref.label} id={row_id} -> {key}")
    report.unreferenced = len(stored - referenced)
    return report
