"""The portal's background jobs. Each takes ids, loads what it needs, and is idempotent:
running it again after a crash finds its earlier result and does nothing twice."""
from __future__ import annotations

from sqlalchemy import select

from review_portal.auth.models import User
from review_portal.cases.models import Case
from review_portal.imaging.models import IngestJob, Series
from review_portal.imaging.pixel_check import check_case
from review_portal.imaging.services import _make_series_thumbnail, process_ingest
from review_portal.jobs import PermanentJobError, handler, submit
from review_portal.letters.models import Letter
from review_portal.letters.services import issue_letter
from review_portal.opinions.models import Opinion


@handler("letters.issue")
def issue_letter_job(db, storage, *, now, case_id: int, opinion_id: int, by_id: int, ip: str, institution: dict,
                     key_images: list[dict] | None = None):
    """Render and deliver the letter of a signed opinion (once per opinion)."""

    existing = db.scalar(select(Letter).where(Letter.opinion_id == opinion_id))
    if existing is not None:
        return f"letter {existing.id} already issued"
    case, opinion, by = db.get(Case, case_id), db.get(Opinion, opinion_id), db.get(User, by_id)
    if case is None or opinion is None or by is None:
        raise PermanentJobError("the case, opinion or reviewer no longer exists")
    letter = issue_letter(db, storage, case, opinion, institution=institution, by=by, ip=ip, now=now,
                          key_images=key_images)
    return f"letter {letter.id} version {letter.version}"


@handler("imaging.series_thumbnail")
def series_thumbnail_job(db, storage, *, now, series_id: int, case_id: int | None = None):
    """Make (or remake) the thumbnail of one series from its middle slice."""

    series = db.get(Series, series_id)
    if series is None:
        raise PermanentJobError("the series no longer exists")
    db.refresh(series, ["instances"])
    refused = _make_series_thumbnail(storage, series)
    return series.thumbnail_key or f"no thumbnail: {refused or 'no renderable slice'}"


@handler("imaging.pixel_check")
def pixel_check_job(db, storage, *, now, case_id: int, ingest_id: int | None = None):
    """Decode every frame of the case's newly indexed files in the sandbox, then make their series' thumbnails.
    Idempotent: checked files are skipped, a series keeps its thumbnail until remade."""

    if db.get(Case, case_id) is None:
        raise PermanentJobError("the case no longer exists")
    series_ids = check_case(db, storage, case_id, now=now, ingest_id=ingest_id)
    for series_id in series_ids:
        submit(db, storage, "imaging.series_thumbnail", now=now, case_id=case_id, series_id=series_id)
    return f"{len(series_ids)} series checked"


@handler("imaging.ingest")
def ingest_job(db, storage, *, now, ingest_id: int, case_id: int | None = None):
    """Parse, index and store one upload. Re-running a finished or half-done ingest adds nothing twice."""

    if db.get(IngestJob, ingest_id) is None:
        raise PermanentJobError("the upload no longer exists")
    job = process_ingest(db, storage, ingest_id, now=now)
    return f"ingest {job.id}: {job.status}"
