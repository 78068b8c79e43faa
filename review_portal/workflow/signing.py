"""Signing: the opinion and its addenda are signed and the letter issued, in one unit of work.

The opinion domain freezes the text; the letters domain renders and delivers it. Nothing signed is
edited in place: every change after the signature is an addendum and a new letter version.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from review_portal import jobs
from review_portal.audit.services import record
from review_portal.errors import PermissionDenied
from review_portal.imaging.identity_services import require_identity_resolved
from review_portal.imaging import annotating
from review_portal.imaging.services import key_image_png, key_images_of_case
from review_portal.letters.models import Letter
from review_portal.letters.services import addendum_summary, issue_letter, latest_letter_of_opinion
from review_portal.opinions import measurements
from review_portal.opinions.permissions import can_add_addendum
from review_portal.opinions.services import check_signature, opinion_for_case, record_addendum, sign_opinion
from review_portal.storage import Storage
from review_portal.workflow.boards import mark_section_addenda_answered


def sign_and_issue_letter(db: Session, storage: Storage, case, *, password: str, attested: bool, institution: dict,
                          by, ip: str, now: datetime, key_images: list[dict] | None = None,
                          based_on_version: int | None = None) -> Letter | None:
    """Sign, then render and deliver the letter through the job interface.

    Signing and issuing are one unit of work. Inline (the embedded default) the letter exists when this
    returns; with a worker queue it is rendered after the commit and this returns None (the case page shows
    the job's progress). `key_images` defaults to the key images marked on the case.
    """
    require_identity_resolved(db, case)  # no opinion on images that may be another patient's
    # The lead review's measurements are recomputed from the original pixels and frozen first, so the signature's
    # hash covers the values the letter prints, never the browser's.
    frozen = []
    lead = measurements.lead_review(case)
    if lead is not None and not measurements.review_is_signed(db, lead):
        frozen = measurements.freeze_measurements(db, storage, case, lead.id, now=now)
    opinion = sign_opinion(db, case, password=password, attested=attested, by=by, ip=ip, now=now,
                           based_on_version=based_on_version,
                           measurements=measurements.signed_measurements(
                               measurements.measurements_of_case(db, case.id, lead.id) if lead is not None else []))
    if frozen:
        record(db, action="measurements.frozen", by=by, ip=ip, now=now, case=case, object_type="opinion",
               object_id=opinion.id, detail=f"{len(frozen)} measurement(s) recomputed from the original images")
        burn_in_key_images(db, storage, case, frozen)
    extra = {"key_images": key_images} if key_images is not None else {}
    job = jobs.submit(db, storage, "letters.issue", now=now, case_id=case.id, opinion_id=opinion.id, by_id=by.id, ip=ip,
                      institution=dict(institution), **extra)
    if not job.is_done:
        return None
    return latest_letter_of_opinion(db, opinion.id)


def burn_in_key_images(db: Session, storage: Storage, case, frozen) -> None:
    """Key images that carry measurements get them drawn in (the server's own rendering of the slice), for the
    letter. The PNG kept at marking is replaced by the annotated one in the same unit of work as the signature."""
    by_image: dict[tuple, list] = {}
    for m in frozen:
        by_image.setdefault((m.instance_id, m.frame), []).append(
            {"kind": m.kind, "points": m.points, "text": m.label if m.kind == "arrow" else (m.label or "")})
    for key_image in key_images_of_case(db, case.id):
        marks = by_image.get((key_image.instance_id, key_image.frame))
        if marks:
            png = key_image_png(db, storage, key_image)
            key_image.png_key = storage.put_bytes_repairing(annotating.burn_in(png, marks))
    db.flush()


def add_addendum(db: Session, storage: Storage, case, text: str, *, reason: str = "", by, ip: str, now: datetime,
                 institution: dict, key_images: list[dict] | None = None) -> Letter:
    """THE step for addenda (also taken for answers to follow-up questions).

    Stores the addendum with its signer, time and sha256, and re-issues the letter as the next version,
    which carries the original opinion, every addendum so far and a note of what changed. The case keeps
    its state (letter delivered or closed): an addendum is not a new review. Returns the new Letter.
    Callers that face a person re-check the password first (see `sign_addendum`).
    """
    opinion, addendum = record_addendum(db, case, text, reason=reason, by=by, ip=ip, now=now)
    mark_section_addenda_answered(db, case, now)  # a multidisciplinary case: it answers the amended sections
    summary = addendum_summary(addendum.number, addendum.reason, now)
    return issue_letter(db, storage, case, opinion, institution=institution, by=by, ip=ip, now=now,
                        key_images=key_images, addendum=addendum, change_summary=summary)


def sign_addendum(db: Session, storage: Storage, case, text: str, *, reason: str, password: str, attested: bool,
                  by, ip: str, now: datetime, institution: dict, key_images: list[dict] | None = None) -> Letter:
    """The reviewer's own addendum from the portal: the password is asked again, as for the opinion."""
    opinion = opinion_for_case(db, case.id)
    if opinion is None or not can_add_addendum(by, case, opinion):
        raise PermissionDenied("Only the reviewer who signed the opinion can add an addendum.")
    check_signature(db, case, password=password, attested=attested, by=by, ip=ip, now=now, what="addendum")
    return add_addendum(db, storage, case, text, reason=reason, by=by, ip=ip, now=now, institution=institution,
                        key_images=key_images)
