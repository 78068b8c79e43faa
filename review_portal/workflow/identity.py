"""Removing a study that is another patient's: the step across imaging, privacy, notifications and audit.

"Wrong study" closes the identity question (imaging.identity_services.mark_wrong_study), deletes the study's
rows and its files through the retention purge's machinery (privacy.retention: the rows owned by the study,
then, once committed, every blob no other row still refers to: the originals, the thumbnails, the key-image
PNGs and the uploads that carried them), and records a privacy incident: another patient's images may have
been seen, so the administrators are told and the audit trail lists who saw them (`image_views_of_removed_study`).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.models import AuditEvent
from review_portal.audit.services import AuditQuery, record, search
from review_portal.auth.models import Role, User
from review_portal.errors import NotFound
from review_portal.imaging import identity_services
from review_portal.imaging.identity_lifecycle import MismatchStatus
from review_portal.imaging.models import (
    IdentityMismatch,
    Instance,
    KeyImage,
    Series,
    Study,
)
from review_portal.notifications.services import notify
from review_portal.privacy.retention import delete_files_after_commit, purge_rows
from review_portal.storage import Storage

# The reads of a study's pixels and headers, as the viewer, the header view and DICOMweb audit them.
IMAGE_READ_ACTIONS = ("images.viewed", "series.viewed", "dicom_header.viewed", "key_image.", "dicomweb.")


def remove_wrong_study(db: Session, storage: Storage, case, study_id: int, *, reason: str, by, ip: str, now: datetime,
                       references, referenced) -> IdentityMismatch:
    """Remove another patient's study from the case and purge its files; record and announce the incident.

    `references` and `referenced` are review_portal.models.BLOB_REFERENCES and blob_is_referenced (the app hands
    them down: the workflow does not import the entry-point layer). Returns one of the resolved records.
    """
    study, rows = identity_services.mark_wrong_study(db, case, study_id, reason=reason, by=by, ip=ip, now=now)
    removed = rows[0].removed or {}
    keys = identity_services.forget_removed_sources(db, case.id, identity_services.blob_keys_of_study(db, study.id),
                                                    set(removed.get("sop_instance_uids", [])))
    keys |= purge_rows(db, Study.__table__, study.id, references=references)
    _forget_objects(db, study.id, removed)
    delete_files_after_commit(db, storage, keys, referenced=referenced)
    record(db, action="privacy.incident", by=by, ip=ip, now=now, case=case, object_type="study", object_id=study_id,
           flagged=True, reason=reason,
           detail=f"another patient's study removed ({rows[0].study_label}); {len(keys)} file(s) purged; "
                  f"header: {removed.get('identity', '')}")
    link = f"/cases/{case.id}/identity/{study_id}/views"
    for admin in db.scalars(select(User).where(User.role == Role.ADMIN, User.active.is_(True)).order_by(User.id)):
        notify(db, admin, kind="privacy_incident", case=case, now=now, link=link,
               text=f"Privacy incident in case {case.reference}: a study of another patient was sent with the referral "
                    "and has been removed. See who saw its images.")
    return rows[0]


def _forget_objects(db: Session, study_id: int, removed: dict) -> None:
    """The rows are gone (bulk delete): the session must not try to write its copies back."""
    series_ids, instance_ids = set(removed.get("series_ids", [])), set(removed.get("instance_ids", []))
    for obj in list(db.identity_map.values()):
        if ((isinstance(obj, Study) and obj.id == study_id) or (isinstance(obj, Series) and obj.id in series_ids)
                or (isinstance(obj, Instance) and obj.id in instance_ids)
                or (isinstance(obj, KeyImage) and obj.series_id in series_ids)) and obj in db:
            db.expunge(obj)  # a study's expunge cascades to its series and instances


def removed_study(db: Session, case, study_id: int) -> IdentityMismatch:
    row = db.scalar(select(IdentityMismatch).where(
        IdentityMismatch.case_id == case.id, IdentityMismatch.study_id == study_id,
        IdentityMismatch.status == MismatchStatus.WRONG_STUDY).order_by(IdentityMismatch.id).limit(1))
    if row is None:
        raise NotFound("No study of this case was removed as another patient's.")
    return row


def image_views_of_removed_study(db: Session, case, study_id: int) -> list[AuditEvent]:
    """Who saw the removed study's images: the case's audit events (audit search) that read its series or
    instances, and the openings of the case's viewer while the study was in it."""
    row = removed_study(db, case, study_id)
    removed = row.removed or {}
    series_ids = {str(i) for i in removed.get("series_ids", [])}
    instance_ids = {str(i) for i in removed.get("instance_ids", [])}
    since = datetime.fromisoformat(removed["study_created_at"]) if removed.get("study_created_at") else None
    out = []
    for event in search(db, AuditQuery(case=str(case.id)), limit=100000):
        if not event.action.startswith(IMAGE_READ_ACTIONS):
            continue
        about_study = ((event.object_type == "series" and event.object_id in series_ids)
                       or (event.object_type == "instance" and event.object_id in instance_ids)
                       or (event.object_type == "study" and event.object_id == str(study_id)))
        in_viewer = (event.object_type == "case" and event.action == "images.viewed" and row.resolved_at is not None
                     and (since is None or event.at >= since) and event.at <= row.resolved_at)
        if about_study or in_viewer:
            out.append(event)
    return out
