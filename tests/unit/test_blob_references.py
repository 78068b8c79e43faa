"""The one list of storage references (review_portal.models.BLOB_REFERENCES) covers every column that
could hold a blob key: a new *_key / *sha256 / JSON column must be listed or declared not to be one."""
from review_portal import models
from review_portal.db import Base

# JSON columns that hold no storage key (profiles, request items, an ingest job's report, a removed study's ids).
_PLAIN_JSON = {("users", "sites"), ("reviewer_profiles", "reading_areas"), ("information_requests", "items"),
               ("ingest_jobs", "report"), ("identity_mismatches", "removed"),
               # the viewer's geometry: numbers read from the header
               ("instances", "pixel_spacing"), ("instances", "image_orientation"), ("instances", "image_position")}


def _looks_like_a_key(column) -> bool:
    name = column.name
    return name.endswith("_key") or name == "sha256" or name.endswith("_sha256") \
        or column.type.__class__.__name__ == "JSON"


def test_every_column_that_may_hold_a_blob_key_is_listed_once():
    listed = {(ref.table, ref.column) for ref in models.BLOB_REFERENCES}
    assert len(listed) == len(models.BLOB_REFERENCES)
    unlisted = [f"{t.name}.{c.name}" for t in Base.metadata.sorted_tables for c in t.columns
                if _looks_like_a_key(c) and (t.name, c.name) not in listed | models.NOT_BLOB_COLUMNS | _PLAIN_JSON
                and not (t.name == "login_throttles")]
    assert unlisted == []


def test_the_list_names_key_images_ingest_sources_documents_letters_and_thumbnails():
    labels = {ref.label for ref in models.BLOB_REFERENCES}
    assert {"instances.blob_key", "series.thumbnail_key", "key_images.png_key", "documents.sha256",
            "letters.blob_key", "ingest_jobs.sources[].key"} <= labels
    for ref in models.BLOB_REFERENCES:  # each names a real column
        assert ref.column in Base.metadata.tables[ref.table].c
