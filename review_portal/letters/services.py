"""Turning a signed opinion into the letter to the referring physician, and tracking its receipt."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.cases.lifecycle import CaseStatus, transition
from review_portal.cases.permissions import can_acknowledge
from review_portal.errors import IllegalTransition, NotFound, PermissionDenied
from review_portal.imaging.services import series_of_case
from review_portal.letters.models import Letter
from review_portal.storage import LocalStorage


def _long_date(d) -> str:
    return f"{d.day} {d:%B %Y}"


def letter_context(db: Session, case, opinion, *, institution: dict, verification_code: str, version: int, now: datetime) -> dict:
    """Plain values only: the template never sees a database object."""
    referring = case.referring
    reviewer = opinion.reviewer
    records = [{"kind": "History", "description": f"{h.kind_label}: {h.text}", "date": h.occurred_on.isoformat()}
               for h in case.history]
    records += [{"kind": "Report", "description": d.filename, "date": d.uploaded_at.date().isoformat()} for d in case.documents]
    for series in series_of_case(db, case.id):
        study = series.study
        description = " – ".join(x for x in (series.modality, study.description, series.description) if x)
        records.append({"kind": "Imaging", "description": f"{description} ({len(series.instances)} image file(s))",
                        "date": study.study_date.isoformat() if study.study_date else ""})
    return {
        "institution": dict(institution),
        "letter_date": _long_date(now),
        "case_reference": case.reference,
        "version": version,
        "recipient": {
            "name": referring.display_name,
            "institution": referring.institution.name if referring.institution else "",
            "address_lines": [line for line in (referring.institution.address if referring.institution else "").split("\n") if line],
        },
        "patient": {"name": case.patient_name, "date_of_birth": case.patient_dob.isoformat(),
                    "sex": case.patient_sex_label, "mrn": case.patient_mrn},
        "review_type_label": case.review_type_label,
        "cancer_site_label": case.cancer_site_label,
        "question": case.question,
        "diagnosis_in_question": case.diagnosis_in_question,
        "plan_in_question": case.plan_in_question,
        "records_reviewed": records,
        "opinion": {
            "diagnosis_concordance_label": opinion.diagnosis_concordance_label,
            "plan_concordance_label": opinion.plan_concordance_label,
            "reviewer_diagnosis": opinion.reviewer_diagnosis,
            "recommended_plan": opinion.recommended_plan,
            "rationale": opinion.rationale,
            "further_tests": opinion.further_tests,
        },
        "reviewer": {"name": reviewer.name, "credentials": reviewer.credentials,
                     "specialty_label": reviewer.specialty_label,
                     "institution": reviewer.institution.name if reviewer.institution else ""},
        "signed_at": f"{_long_date(opinion.signed_at)}, {opinion.signed_at:%H:%M} UTC",
        "verification_code": verification_code,
    }


def issue_letter(db: Session, storage: LocalStorage, case, opinion, *, institution: dict, by, ip: str, now: datetime) -> Letter:
    """Render the PDF, keep it content-addressed, and deliver it to the referring physician's portal."""
    from review_portal.letters.render import render_letter_pdf

    if not opinion.is_signed:
        raise IllegalTransition("A letter can only be issued for a signed opinion.")
    previous = db.scalars(select(Letter).where(Letter.case_id == case.id)).all()
    version = len(previous) + 1
    code = secrets.token_hex(6).upper()
    pdf = render_letter_pdf(letter_context(db, case, opinion, institution=institution,
                                           verification_code=code, version=version, now=now))
    key, _ = storage.put_bytes(pdf)
    letter = Letter(case_id=case.id, opinion_id=opinion.id, version=version, blob_key=key,
                    sha256=hashlib.sha256(pdf).hexdigest(), verification_code=code, issued_at=now, delivered_at=now)
    db.add(letter)
    transition(case, CaseStatus.LETTER_DELIVERED, now, by=by, ip=ip, why=f"letter version {version} issued")
    db.flush()
    record(db, action="letter.issued", by=by, ip=ip, now=now, case=case, object_type="letter",
           object_id=letter.id, detail=f"version={version}; sha256={letter.sha256}")
    from review_portal.notifications.services import notify

    notify(db, case.referring, kind="letter_ready", case=case, now=now,
           text=f"The second-opinion letter for case {case.reference} (version {version}) is ready to download.")
    return letter


def letters_for_case(db: Session, case_id: int) -> list[Letter]:
    return list(db.scalars(select(Letter).where(Letter.case_id == case_id).order_by(Letter.version.desc())))


def get_letter_in_case(db: Session, case_id: int, letter_id: int) -> Letter:
    letter = db.scalar(select(Letter).where(Letter.id == letter_id, Letter.case_id == case_id))
    if letter is None:
        raise NotFound("No such letter.")
    return letter


def record_letter_download(db: Session, case, letter: Letter, *, by, ip: str, now: datetime) -> None:
    if by.id == case.referring_id and letter.first_downloaded_at is None:
        letter.first_downloaded_at = now
    record(db, action="letter.downloaded", by=by, ip=ip, now=now, case=case, object_type="letter", object_id=letter.id)


def acknowledge_letter(db: Session, case, *, by, ip: str, now: datetime) -> Letter:
    """The referring physician confirms receipt; follow-up questions stay possible until the case is closed."""
    if not can_acknowledge(by, case):
        if by.id == case.referring_id:
            raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; there is no letter to acknowledge.")
        raise PermissionDenied("Only the referring physician can acknowledge the letter.")
    letter = letters_for_case(db, case.id)[0]
    letter.acknowledged_at = now
    letter.acknowledged_by_id = by.id
    transition(case, CaseStatus.ACKNOWLEDGED, now, by=by, ip=ip, why=f"receipt of letter version {letter.version}")
    record(db, action="letter.acknowledged", by=by, ip=ip, now=now, case=case, object_type="letter", object_id=letter.id)
    return letter
