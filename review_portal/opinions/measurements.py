"""The reviewer's measurements: drawn in the viewer, computed here from the original pixels, kept with the
reviewer's review until it is signed, then recomputed and frozen into the signed opinion.

Each measurement belongs to one review (the lead opinion's or a contributor's) and only that review's reviewer
changes it, while the review is not signed (the opinion for the lead review, the findings for a contributor's);
after that every change is refused with IllegalTransition (409). Everyone who may see the case may read them.
The browser's figures are display only: the values stored are always computed by the server, from the stored
file, in the sandbox (imaging.sandboxed.measure).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth.models import Role
from review_portal.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from review_portal.imaging import measuring, reading, sandboxed
from review_portal.imaging.limits import stored_frames
from review_portal.imaging.models import Instance, Series, Study
from review_portal.opinions.measurement_models import MEASUREMENT_KINDS, Measurement
from review_portal.opinions.models import Opinion
from review_portal.storage import Storage

MAX_LABEL = 300
MAX_PER_REVIEW = 200


def own_review(case, user):
    """The review of this case `user` holds and has accepted, or None."""
    if user is None or getattr(user, "role", None) != Role.REVIEWER:
        return None
    held = [a for a in case.assignments if a.reviewer_id == user.id and a.active and a.is_taken]
    held.sort(key=lambda a: not a.review.is_lead)  # the lead review first
    return held[0].review if held else None


def review_is_signed(db: Session, review) -> bool:
    """The lead review is signed with the opinion; a contributor's when its findings are handed in."""
    if review.is_lead:
        opinion = db.scalar(select(Opinion).where(Opinion.case_id == review.case_id))
        return opinion is not None and opinion.is_signed
    return review.is_completed


def _editable_review(db: Session, case, by):
    review = own_review(case, by)
    if review is None:
        raise PermissionDenied("Only a reviewer who has accepted a review of this case measures its images.")
    if review_is_signed(db, review):
        raise IllegalTransition("This review is signed: its measurements can no longer be changed.")
    return review


def measurements_of_case(db: Session, case_id: int, review_id: int | None = None) -> list[Measurement]:
    query = select(Measurement).where(Measurement.case_id == case_id)
    if review_id is not None:
        query = query.where(Measurement.review_id == review_id)
    return list(db.scalars(query.order_by(Measurement.review_id, Measurement.id)))


def measurements_seen(db: Session, case, *, by, ip: str, now: datetime) -> list[Measurement]:
    """The case's measurements, for someone the caller has checked may see the case: a read, audited."""
    rows = measurements_of_case(db, case.id)
    record(db, action="measurements.viewed", by=by, ip=ip, now=now, case=case, object_type="case", object_id=case.id,
           detail=f"{len(rows)} measurement(s)")
    return rows


def instance_in_case(db: Session, case_id: int, sop_instance_uid: str) -> Instance:
    instance = db.scalar(select(Instance).join(Series).join(Study).where(
        Study.case_id == case_id, Instance.sop_instance_uid == str(sop_instance_uid or "")[:64]))
    if instance is None:
        raise NotFound("No such image in this case.")
    return instance


def _clean_label(label) -> str:
    if label is None:
        return ""
    if not isinstance(label, str):
        raise InvalidInput("The label must be text.")
    label = " ".join(label.split())
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"Keep the label under {MAX_LABEL} characters.")
    return label


def compute_on(storage: Storage, instance: Instance, frame, kind: str, points) -> tuple[list, dict]:
    """(points as kept, values) from the stored original: checked here first, computed in the sandbox."""
    if kind not in MEASUREMENT_KINDS:
        raise InvalidInput(f"Unknown kind of measurement {str(kind)[:20]!r}.")
    if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < stored_frames(instance.frames):
        raise InvalidInput("No such frame in this image.")
    try:
        measuring.check_points(kind, points, instance.rows, instance.columns)
        result = sandboxed.measure(storage.verified_local_path(instance.blob_key), frame, kind, points)
    except measuring.MeasurementRejected as exc:
        raise InvalidInput(f"The measurement was not saved: {exc.reason}.") from exc
    except reading.DicomRejected as exc:
        raise InvalidInput(f"This image cannot be measured: {exc.reason}.") from exc
    return result["points"], result["values"]


def create_measurement(db: Session, storage: Storage, case, *, sop_instance_uid: str, frame, kind: str, points,
                       label: str = "", by, ip: str, now: datetime) -> Measurement:
    review = _editable_review(db, case, by)
    instance = instance_in_case(db, case.id, sop_instance_uid)
    label = _clean_label(label)
    if len(measurements_of_case(db, case.id, review.id)) >= MAX_PER_REVIEW:
        raise InvalidInput(f"A review keeps at most {MAX_PER_REVIEW} measurements.")
    kept, values = compute_on(storage, instance, frame, kind, points)
    measurement = Measurement(case_id=case.id, review_id=review.id, author_id=by.id, instance_id=instance.id,
                              sop_instance_uid=instance.sop_instance_uid, frame=frame, kind=kind, points=kept,
                              label=label, values=values, created_at=now, updated_at=now)
    db.add(measurement)
    db.flush()
    record(db, action="measurement.created", by=by, ip=ip, now=now, case=case, object_type="measurement",
           object_id=measurement.id, detail=f"{kind} on {instance.sop_instance_uid} frame {frame}: "
           f"{measuring.describe(kind, values)}")
    return measurement


def _own_measurement(db: Session, case, measurement_id: int, by) -> Measurement:
    measurement = db.get(Measurement, measurement_id)
    if measurement is None or measurement.case_id != case.id:
        raise NotFound("No such measurement.")
    review = _editable_review(db, case, by)
    if measurement.review_id != review.id or measurement.author_id != by.id:
        raise PermissionDenied("Only the reviewer who made a measurement changes it.")
    if measurement.is_frozen:
        raise IllegalTransition("This measurement is signed and can no longer be changed.")
    return measurement


def update_measurement(db: Session, storage: Storage, case, measurement_id: int, *, points=None, label=None,
                       by, ip: str, now: datetime) -> Measurement:
    """Move its points (the values are computed again) and/or change its label."""
    measurement = _own_measurement(db, case, measurement_id, by)
    if label is not None:
        measurement.label = _clean_label(label)
    if points is not None:
        measurement.points, measurement.values = compute_on(storage, measurement.instance, measurement.frame,
                                                            measurement.kind, points)
    measurement.updated_at = now
    db.flush()
    record(db, action="measurement.changed", by=by, ip=ip, now=now, case=case, object_type="measurement",
           object_id=measurement.id, detail=measuring.describe(measurement.kind, measurement.values))
    return measurement


def delete_measurement(db: Session, case, measurement_id: int, *, by, ip: str, now: datetime) -> None:
    measurement = _own_measurement(db, case, measurement_id, by)
    record(db, action="measurement.removed", by=by, ip=ip, now=now, case=case, object_type="measurement",
           object_id=measurement.id, detail=f"{measurement.kind} on {measurement.sop_instance_uid}")
    db.delete(measurement)
    db.flush()


def freeze_measurements(db: Session, storage: Storage, case, review_id: int, *, now: datetime) -> list[Measurement]:
    """At signing: every measurement of the review recomputed from the original pixels and frozen. A file that
    can no longer be measured stops the signature (InvalidInput), so nothing is signed on the browser's word."""
    frozen = []
    for measurement in measurements_of_case(db, case.id, review_id):
        if measurement.is_frozen:
            continue
        measurement.points, measurement.values = compute_on(storage, measurement.instance, measurement.frame,
                                                            measurement.kind, measurement.points)
        measurement.frozen_at = now
        frozen.append(measurement)
    db.flush()
    return frozen


def signed_measurements(measurements: list[Measurement]) -> list[dict]:
    """What the signature covers: each measurement's anchor, kind, points, label and values."""
    return [{"id": m.id, "sop_instance_uid": m.sop_instance_uid, "frame": m.frame, "kind": m.kind,
             "points": m.points, "label": m.label, "values": m.values} for m in measurements]


def lead_review(case):
    return next((r for r in case.reviews if r.is_lead), None)


def image_label(m: Measurement) -> str:
    """Where a measurement was made, as a reader finds it again: series, image (instance) number, frame."""
    series = m.instance.series
    number = m.instance.instance_number
    image = f"{series.modality} {series.description or 'series'}".strip()
    if series.series_number is not None:
        image += f", series {series.series_number}"
    image += f", image {number if number is not None else '?'}"
    if stored_frames(m.instance.frames) > 1:
        image += f", frame {m.frame + 1}"
    return image


def measurement_rows(db: Session, case, review_id: int) -> list[dict]:
    """Plain values for a list of one review's measurements: label, image (series, image number, frame), kind,
    value as printed; `calibrated` False when the figures are in pixels."""
    rows = []
    for m in measurements_of_case(db, case.id, review_id):
        rows.append({"id": m.id, "label": m.label, "image": image_label(m), "kind": m.kind, "kind_label": m.kind_label,
                     "value": measuring.describe(m.kind, m.values),
                     "calibrated": bool(m.values.get("calibrated", True)),
                     "sop_instance_uid": m.sop_instance_uid, "frame": m.frame})
    return rows


def measurements_for_page(db: Session, case, user) -> list[dict]:
    """The list beside the opinion form: the measurements of the review `user` holds."""
    review = own_review(case, user)
    return measurement_rows(db, case, review.id) if review is not None else []


def lesion_rows(db: Session, case, review_id: int) -> list[dict]:
    """One review's measurements as the letter prints them, in the order made. An arrow measures nothing (it
    shows on its key image), so it has no row."""
    return [{"label": r["label"] or "(no label)", "image": r["image"], "kind": r["kind_label"], "value": r["value"]}
            for r in measurement_rows(db, case, review_id) if r["kind"] != "arrow"]


def measurements_for_letter(db: Session, case) -> list[dict]:
    """The letter's table of lesions: the lead review's measurements."""
    review = lead_review(case)
    return lesion_rows(db, case, review.id) if review is not None else []
