"""Is this the same patient? Flagging, at ingest, a study whose header names another patient than the
referral; confirming it is the same patient; marking it as the wrong study; and the gate that keeps an
opinion from being signed while a question is open. Services flush, never commit.

Removing a wrong study (its rows, blobs and derived images, the privacy incident) crosses domains and is
done by workflow.identity, which calls `mark_wrong_study` here first.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth.models import Role
from review_portal.errors import (
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from review_portal.imaging import identity
from review_portal.imaging.identity_lifecycle import MismatchStatus, set_status
from review_portal.imaging.models import IdentityMismatch, Instance, Series, Study

# Config key PATIENT_ID_ACCEPTED_ISSUERS, handed to services through the session's info (see app._configure_mail).
ISSUERS_INFO_KEY = "patient_id_accepted_issuers"
MAX_REASON = 1000


def accepted_issuers_of(db: Session) -> tuple[str, ...]:
    return tuple(db.info.get(ISSUERS_INFO_KEY, ()) or ())


def study_identity_values(info) -> dict:
    """The Study columns holding who an inspected file says the patient is."""
    return {"patient_name": info.patient_name, "patient_id": info.patient_id,
            "patient_id_issuer": info.patient_id_issuer, "patient_birth_date": info.patient_birth_date,
            "patient_sex": info.patient_sex, "other_patient_ids": info.other_patient_ids}


def study_identity(study: Study) -> identity.PatientIdentity:
    others = []
    for line in (study.other_patient_ids or "").splitlines():
        pid, _, issuer = line.partition("\t")
        if pid.strip():
            others.append((pid, issuer))
    return identity.PatientIdentity(
        name=study.patient_name or "", id=study.patient_id or "", birth_date=study.patient_birth_date or "",
        sex=study.patient_sex or "", issuer=study.patient_id_issuer or "", other_ids=tuple(others))


def case_identity(case) -> identity.PatientIdentity:
    return identity.referral_identity(name=case.patient_name, mrn=case.patient_mrn, birth_date=case.patient_dob,
                                      sex=case.patient_sex)


def study_label(study: Study) -> str:
    date = study.study_date.isoformat() if study.study_date else "no date"
    return f"{study.description or 'Study'} ({date})"[:300]


def _studies(db: Session, case_id: int) -> list[Study]:
    return list(db.scalars(select(Study).where(Study.case_id == case_id).order_by(Study.id)))


def mismatches_of_case(db: Session, case_id: int) -> list[IdentityMismatch]:
    return list(db.scalars(select(IdentityMismatch).where(IdentityMismatch.case_id == case_id)
                           .order_by(IdentityMismatch.study_id, IdentityMismatch.id)))


def open_mismatches(db: Session, case_id: int) -> list[IdentityMismatch]:
    return [m for m in mismatches_of_case(db, case_id) if m.status == MismatchStatus.OPEN]


def flag_mismatches(db: Session, case, *, now: datetime, by=None, ip: str = "") -> list[IdentityMismatch]:
    """Compare every study of the case with the referral (and with each other); record each new difference.

    Safe to run again: a (study, field) already on record is not recorded twice, whatever its status.
    Studies with no stored identity (ingested before the check existed) are not compared.
    """
    if case is None:
        return []
    issuers = accepted_issuers_of(db)
    known = {(m.study_id, m.field) for m in mismatches_of_case(db, case.id)}
    referral = case_identity(case)
    studies = [s for s in _studies(db, case.id) if s.patient_name is not None]
    found: list[tuple[Study, identity.Difference]] = []
    alone_ok = []
    for study in studies:
        differences = identity.compare(referral, study_identity(study), accepted_issuers=issuers).differences
        found += [(study, d) for d in differences]
        if not differences:
            alone_ok.append(study)
    # Several patients in one referral: studies that each pass against the referral but differ from each other
    # (the referral leaves out what tells them apart: no sex stated, an outside ID on each).
    by_id = {s.id: s for s in alone_ok}
    for earlier, later in identity.compare_studies([(s.id, study_identity(s)) for s in alone_ok], accepted_issuers=issuers):
        found.append((by_id[later], identity.Difference(
            "several_patients", f"{study_label(by_id[earlier])}: {identity.describe(study_identity(by_id[earlier]))}",
            identity.describe(study_identity(by_id[later])))))
    new = []
    for study, difference in found:
        if (study.id, difference.field) in known:
            continue
        known.add((study.id, difference.field))
        mismatch = IdentityMismatch(
            case_id=case.id, study_id=study.id, study_instance_uid=study.study_instance_uid, study_label=study_label(study),
            field=difference.field, referral_value=difference.referral_value[:300],
            dicom_value=difference.dicom_value[:300], status=MismatchStatus.OPEN.value, created_at=now, reason="")
        db.add(mismatch)
        new.append(mismatch)
    db.flush()
    for mismatch in new:
        record(db, action="identity.mismatch_flagged", by=by, ip=ip, now=now, case=case, object_type="study",
               object_id=mismatch.study_id, flagged=True,
               detail=f"{identity.FIELD_LABELS[mismatch.field]}: referral '{mismatch.referral_value}', "
                      f"file '{mismatch.dicom_value}'")
    return new


# --------------------------------------------------------------------------
# Who may resolve, and the gate on signing
# --------------------------------------------------------------------------


def can_resolve_identity(user, case) -> bool:
    """The referring physician who owns the case, or a coordinator."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.role == Role.COORDINATOR or user.id == case.referring_id


def require_identity_resolved(db: Session, case) -> None:
    """Raise IllegalTransition (409) while a study's patient identity is in question. Any signing path
    (the opinion, a section of it) calls this before it signs."""
    waiting = open_mismatches(db, case.id)
    if not waiting:
        return
    first = waiting[0]
    raise IllegalTransition(
        f"The opinion cannot be signed while a study's patient identity is unresolved: {first.study_label}, "
        f"{identity.FIELD_LABELS[first.field].lower()} is '{first.dicom_value}' in the file and "
        f"'{first.referral_value}' in the referral. The referring physician or a coordinator must confirm it is "
        "the same patient or remove the study.")


# --------------------------------------------------------------------------
# Resolving
# --------------------------------------------------------------------------


def _open_of_study(db: Session, case, study_id: int, by) -> list[IdentityMismatch]:
    if not can_resolve_identity(by, case):
        raise PermissionDenied("Only the referring physician or a coordinator resolves a patient-identity question.")
    rows = [m for m in mismatches_of_case(db, case.id) if m.study_id == study_id]
    if not rows:
        raise NotFound("No identity question about this study.")
    waiting = [m for m in rows if m.status == MismatchStatus.OPEN]
    if not waiting:
        set_status(rows[0], MismatchStatus.SAME_PATIENT)  # raises IllegalTransition with the current state
    return waiting


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Give the reason for your decision (for example: the outside site's own MRN).")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"Keep the reason under {MAX_REASON} characters.")
    return reason


def _resolve(rows, target: MismatchStatus, *, reason: str, by, now: datetime) -> None:
    for mismatch in rows:
        set_status(mismatch, target)
        mismatch.reason, mismatch.resolved_by_id, mismatch.resolved_at = reason, by.id, now


def confirm_same_patient(db: Session, case, study_id: int, *, reason: str, by, ip: str, now: datetime) -> list[IdentityMismatch]:
    """The study is this patient's after all (an outside MRN, a maiden name...): every open question about it closes."""
    reason = _reason(reason)
    rows = _open_of_study(db, case, study_id, by)
    _resolve(rows, MismatchStatus.SAME_PATIENT, reason=reason, by=by, now=now)
    db.flush()
    record(db, action="identity.confirmed", by=by, ip=ip, now=now, case=case, object_type="study", object_id=study_id,
           reason=reason, detail=f"same patient; fields: {', '.join(m.field for m in rows)}")
    return rows


def mark_wrong_study(db: Session, case, study_id: int, *, reason: str, by, ip: str, now: datetime) -> tuple[Study, list[IdentityMismatch]]:
    """The study is another patient's: close its questions as "wrong study" and note what it held (series and
    instance ids, by which the audit trail shows who saw its images). The caller removes and purges it."""
    reason = _reason(reason)
    rows = _open_of_study(db, case, study_id, by)
    study = db.get(Study, study_id)
    if study is None or study.case_id != case.id:
        raise NotFound("No such study in this case.")
    series_ids = list(db.scalars(select(Series.id).where(Series.study_id == study.id).order_by(Series.id)))
    instance_ids = list(db.scalars(select(Instance.id).join(Series).where(Series.study_id == study.id)
                                   .order_by(Instance.id)))
    sop_uids = list(db.scalars(select(Instance.sop_instance_uid).join(Series).where(Series.study_id == study.id)))
    removed = {"series_ids": series_ids, "instance_ids": instance_ids, "sop_instance_uids": sop_uids,
               "study_created_at": study.created_at.isoformat(), "identity": identity.describe(study_identity(study))}
    _resolve(rows, MismatchStatus.WRONG_STUDY, reason=reason, by=by, now=now)
    for mismatch in rows:
        mismatch.removed = removed
    db.flush()
    record(db, action="identity.wrong_study", by=by, ip=ip, now=now, case=case, object_type="study",
           object_id=study_id, reason=reason, flagged=True,
           detail=f"{study_label(study)}; {len(series_ids)} series, {len(instance_ids)} image file(s) to be removed")
    return study, rows


# --------------------------------------------------------------------------
# For the pages and the letter: plain values
# --------------------------------------------------------------------------


def identity_warnings(db: Session, case_id: int) -> list[dict]:
    """Open questions grouped by study, each naming the field and both values."""
    groups: dict[int, dict] = {}
    for m in open_mismatches(db, case_id):
        group = groups.setdefault(m.study_id, {"study_id": m.study_id, "study_label": m.study_label, "fields": []})
        group["fields"].append({"field": m.field, "label": identity.FIELD_LABELS.get(m.field, m.field),
                                "referral_value": m.referral_value, "dicom_value": m.dicom_value})
    return list(groups.values())


def study_identity_records(db: Session, case_id: int) -> list[dict]:
    """The letter's "records reviewed" lines for the studies: who each header names, and that it was checked."""
    resolved: dict[int, list[IdentityMismatch]] = {}
    for m in mismatches_of_case(db, case_id):
        resolved.setdefault(m.study_id, []).append(m)
    out = []
    for study in _studies(db, case_id):
        if study.patient_name is None:
            check = "identity not checked (sent before the check existed)"
        elif resolved.get(study.id):
            reasons = sorted({m.reason for m in resolved[study.id] if m.status == MismatchStatus.SAME_PATIENT})
            check = "confirmed same patient: " + "; ".join(reasons) if reasons else "identity question open"
        else:
            check = "identity checked against the referral"
        who = identity.describe(study_identity(study)) if study.patient_name is not None else "not recorded"
        out.append({"kind": "Imaging study",
                    "description": f"{study.description or 'Study'}. Patient in the file: {who}. {check[:1].upper()}{check[1:]}.",
                    "date": study.study_date.isoformat() if study.study_date else ""})
    return out


def forget_removed_sources(db: Session, case_id: int, blob_keys: set[str], sop_uids: set[str]) -> set[str]:
    """Take a removed study's files out of the case's uploads (ingest_jobs.sources), which keep what was sent
    to re-run a job: a file of the study, or a zip that held one of its images. Returns their blob keys, for
    the purge; the job's report keeps the names of what was sent."""
    from review_portal.imaging.models import IngestJob

    removed: set[str] = set()
    for job in db.scalars(select(IngestJob).where(IngestJob.case_id == case_id)):
        stored = (job.report or {}).get("stored", [])
        names = {str(name) for name, uid in (tuple(x) for x in stored) if uid in sop_uids}
        keep = []
        for source in job.sources or []:
            name, key = source.get("name", ""), source.get("key", "")
            held = key in blob_keys or name in names or any(n.startswith(f"{name}: ") for n in names)
            if held:
                removed.add(key)
            else:
                keep.append(source)
        if len(keep) != len(job.sources or []):
            job.sources = keep
    db.flush()
    return removed


def blob_keys_of_study(db: Session, study_id: int) -> set[str]:
    return set(db.scalars(select(Instance.blob_key).join(Series).where(Series.study_id == study_id)))
