"""Every domain's models, imported once so that `Base.metadata` knows all tables.

The app factory, the Alembic environment and the backup check import this module; core (`db`) does not,
since it knows no domain. For the same reason the one list of columns that refer to stored blobs
(BLOB_REFERENCES) lives here, and the app factory hands `blob_is_referenced` down to the request boundary.
"""
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import String, cast, select

from review_portal import jobs  # noqa: F401  (the background-job table)
from review_portal.api import models as api  # noqa: F401
from review_portal.assignment import models as assignment  # noqa: F401
from review_portal.audit import models as audit  # noqa: F401
from review_portal.auth import models as auth  # noqa: F401
from review_portal.cases import models as cases  # noqa: F401
from review_portal.cases import questions as patient_questions  # noqa: F401
from review_portal.db import Base
from review_portal.imaging import models as imaging  # noqa: F401
from review_portal.letters import models as letters  # noqa: F401
from review_portal.letters import summary_models as patient_summaries  # noqa: F401
from review_portal.messaging import models as messaging  # noqa: F401
from review_portal.notifications import models as notifications  # noqa: F401
from review_portal.opinions import measurement_models as measurements  # noqa: F401
from review_portal.opinions import models as opinions  # noqa: F401
from review_portal.opinions import section_models as opinion_sections  # noqa: F401
from review_portal.outcomes import models as outcomes  # noqa: F401
from review_portal import ratelimit  # noqa: F401  (the shared rate-limit counters)

metadata = Base.metadata


# --- Every place the database refers to a blob in storage: the ONE list ---------------------------------
# The request boundary (may a failed request delete the blob it stored?), the retention purge (which files
# belong to a case, which are still shared) and `flask backup-verify` (does every reference resolve?) all
# read this list. A new column holding a storage key goes here; tests/unit/test_blob_references.py fails
# on any *_key / *sha256 / JSON column that is neither listed here nor in NOT_BLOB_COLUMNS.

@dataclass(frozen=True)
class BlobReference:
    table: str
    column: str
    json_key: str | None = None  # a JSON list of objects, each holding a key under this name
    derived: bool = False  # bytes computed from other blobs (a thumbnail): could be rebuilt, still backed up

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}" + (f"[].{self.json_key}" if self.json_key else "")


BLOB_REFERENCES: tuple[BlobReference, ...] = (
    BlobReference("instances", "blob_key"),  # DICOM originals
    BlobReference("series", "thumbnail_key", derived=True),
    BlobReference("instances", "decoded_key", derived=True),  # a JPEG 2000 original's pixels, stored uncompressed
    BlobReference("key_images", "png_key"),  # the PNG kept from the moment a slice was marked
    BlobReference("documents", "sha256"),  # documents are keyed by their sha256
    BlobReference("letters", "blob_key"),  # the issued PDF
    BlobReference("letters", "sha256"),  # the same PDF's hash, as printed on the letter
    BlobReference("ingest_jobs", "sources", json_key="key"),  # what an upload sent, kept to re-run the job
    BlobReference("patient_summaries", "blob_key"),  # the signed summary for the patient (PDF)
    BlobReference("patient_summaries", "sha256"),  # the same PDF's hash
    BlobReference("patient_summaries", "key_images", json_key="png_key"),  # key images the lead chose to show
)

# Columns that look like storage keys but hash something else (tokens, opinion text).
NOT_BLOB_COLUMNS = {("api_tokens", "token_sha256"), ("auth_tokens", "token_sha256"),
                    ("user_sessions", "token_sha256"), ("opinions", "content_sha256"),
                    ("opinion_addenda", "content_sha256"), ("opinion_sections", "content_sha256"),
                    ("section_addenda", "content_sha256"),
                    ("opinion_sections", "content"),  # a section's structured text (JSON)
                    ("measurements", "points"), ("measurements", "values"),  # image coordinates and figures
                    ("patient_summaries", "content_sha256"), ("patient_summaries", "answers")}


def _column(ref: BlobReference):
    return Base.metadata.tables[ref.table].c[ref.column]


def _json_keys(value, name: str) -> set[str]:
    return {str(item.get(name, "")) for item in value or [] if isinstance(item, dict)}


def iter_blob_references(db) -> Iterator[tuple[BlobReference, object, str]]:
    """(reference, row id, key) for every stored reference to a blob."""
    for ref in BLOB_REFERENCES:
        col = _column(ref)
        pk = list(col.table.primary_key.columns)[0]
        for row_id, value in db.execute(select(pk, col).where(col.is_not(None))):
            if ref.json_key:
                for key in sorted(_json_keys(value, ref.json_key)):
                    if key:
                        yield ref, row_id, key
            elif value:
                yield ref, row_id, value


def blob_is_referenced(db, key: str) -> bool:
    """Does any row refer to this blob? Run it in a fresh session to see only what is committed."""
    for ref in BLOB_REFERENCES:
        col = _column(ref)
        if ref.json_key:
            # A text search narrows the rows; the JSON itself decides (64 hex digits: no false match).
            for value in db.execute(select(col).where(cast(col, String).contains(key))).scalars():
                if key in _json_keys(value, ref.json_key):
                    return True
        elif db.execute(select(col).where(col == key).limit(1)).first() is not None:
            return True
    return False
