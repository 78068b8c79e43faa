"""Signing: the opinion and its addenda are signed and the letter issued, in one unit of work.

The opinion domain freezes the text; the letters domain renders and delivers it. Nothing signed is
edited in place: every change after the signature is an addendum and a new letter version.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from review_portal import jobs
from review_portal.errors import PermissionDenied
from review_portal.letters.models import Letter
from review_portal.letters.services import addendum_summary, issue_letter, latest_letter_of_opinion
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
    opinion = sign_opinion(db, case, password=password, attested=attested, by=by, ip=ip, now=now,
                           based_on_version=based_on_version)
    extra = {"key_images": key_images} if key_images is not None else {}
    job = jobs.submit(db, storage, "letters.issue", now=now, case_id=case.id, opinion_id=opinion.id, by_id=by.id, ip=ip,
                      institution=dict(institution), **extra)
    if not job.is_done:
        return None
    return latest_letter_of_opinion(db, opinion.id)


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
