"""Turning a signed opinion into the letter to the referring physician, re-issuing it after addenda,
verifying a letter by its code, and tracking receipt."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review_portal.audit.models import AuditEvent
from review_portal.audit.services import record
from review_portal.cases.lifecycle import CaseStatus, transition
from review_portal.cases.models import Case
from review_portal.cases.permissions import can_acknowledge, can_resend_letter
from review_portal.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from review_portal.imaging.identity_services import study_identity_records
from review_portal.imaging.services import key_images_for_letter, series_of_case
from review_portal.letters.models import Letter
from review_portal.letters.render import render_letter_pdf
from review_portal.letters.summary_models import PatientSummary
from review_portal.notifications.services import notify
from review_portal.opinions.measurements import measurements_for_letter
from review_portal.opinions.sections import board_letter_values
from review_portal.storage import Storage

# Crockford base32 without I, L, O, U: read aloud over the phone without confusion.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16  # 80 random bits: guessing one of the issued codes is hopeless at any request rate
KEY_IMAGE_FIELDS = ("caption", "series_label", "slice_label", "window_label", "png_key")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def new_verification_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise_code(text: str) -> str | None:
    """What the recipient typed, as stored (XXXX-XXXX-XXXX-XXXX), or None if it cannot be a code."""
    cleaned = re.sub(r"[\s-]", "", (text or "")[:64]).upper().translate(str.maketrans("OIL", "011"))
    if len(cleaned) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in cleaned):
        return None
    return "-".join(cleaned[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def _long_date(d) -> str:
    return f"{d.day} {d:%B %Y}"


def _stamp(d) -> str:
    return f"{_long_date(d)}, {d:%H:%M} UTC"


def clean_key_images(key_images: list[dict] | None) -> list[dict]:
    """Key images as plain strings in the shape imaging.services.key_images_for_letter returns."""
    cleaned = []
    for item in key_images or []:
        image = {name: str(item.get(name) or "") for name in KEY_IMAGE_FIELDS}
        if not _SHA256.match(image["png_key"]):
            raise InvalidInput("A key image has no valid stored picture.")
        cleaned.append(image)
    return cleaned


def _opinion_values(opinion) -> dict:
    return {
        "diagnosis_concordance_label": opinion.diagnosis_concordance_label,
        "plan_concordance_label": opinion.plan_concordance_label,
        "reviewer_diagnosis": opinion.reviewer_diagnosis,
        "recommended_plan": opinion.recommended_plan,
        "rationale": opinion.rationale,
        "further_tests": opinion.further_tests,
        "stage_text": opinion.stage_text,
        "tnm": opinion.tnm,
        "trial_consideration_label": opinion.trial_consideration_label,
        "clinical_trials": opinion.clinical_trials,
        "urgency_label": opinion.urgency_label,
        "urgency": opinion.urgency,
        "findings": opinion.findings,
        "impression": opinion.impression,
        "radpeer_score": opinion.radpeer_score,
        "radpeer_label": opinion.radpeer_label,
        "radpeer_comment": opinion.radpeer_comment,
    }


def letter_context(db: Session, case, opinion, *, institution: dict, verification_code: str, version: int, now: datetime,
                   key_images: list[dict] | None = None, addenda=None, change_summary: str = "",
                   previous: list[Letter] | None = None) -> dict:
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
    records += study_identity_records(db, case.id)  # who each study's header names, checked against the referral
    addenda = list(addenda if addenda is not None else opinion.addenda)
    verify_url = str(institution.get("verification_url") or "/verify")
    return {
        "institution": {k: v for k, v in dict(institution).items() if k != "verification_url"},
        "letter_date": _long_date(now),
        "case_reference": case.reference,
        "review_type": case.review_type,
        "version": version,
        "change_summary": change_summary,
        "previous_versions": [{"version": p.version, "issued": _long_date(p.issued_at),
                               "verification_code": p.verification_code} for p in (previous or [])],
        "recipient": {
            "name": referring.display_name,
            "salutation": referring.name,  # "Dear Dr Jane Roe", not "Dear Dr Jane Roe, MD"
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
        "opinion": _opinion_values(opinion),
        "key_images": clean_key_images(key_images),
        "measurements": measurements_for_letter(db, case),
        "addenda": [{"number": a.number, "reason": a.reason, "text": a.text,
                     "signed_by": a.signed_by.display_name if a.signed_by else "",
                     "signed_at": _stamp(a.signed_at), "sha256": a.content_sha256} for a in addenda],
        "reviewer": {"name": reviewer.name, "credentials": reviewer.credentials,
                     "specialty_label": reviewer.specialty_label,
                     "institution": reviewer.institution.name if reviewer.institution else ""},
        "signed_at": _stamp(opinion.signed_at) if opinion.signed_at else "",
        "content_sha256": opinion.content_sha256 or "",
        "verification_code": verification_code,
        "verification_url": verify_url,
        # The multidisciplinary opinion: signed sections, waivers, dissents and section addenda (empty otherwise).
        "board": board_letter_values(db, case),
    }


def issue_letter(db: Session, storage: Storage, case, opinion, *, institution: dict, by, ip: str, now: datetime,
                 key_images: list[dict] | None = None, addendum=None, change_summary: str = "") -> Letter:
    """Render the PDF, keep it content-addressed, and deliver it to the referring physician's portal.

    The first letter moves the case to "letter delivered"; a re-issue after an addendum is delivered
    again (a closed case stays closed) and every earlier version stays retrievable.
    `key_images` defaults to the case's marked key images.
    """

    if not opinion.is_signed:
        raise IllegalTransition("A letter can only be issued for a signed opinion.")
    if key_images is None:
        # The reviewer's key images, as marked in the viewer, travel with every version of the letter.
        key_images = key_images_for_letter(db, case.id)
    previous = list(db.scalars(select(Letter).where(Letter.case_id == case.id).order_by(Letter.version)))
    version = len(previous) + 1
    code = new_verification_code()
    context = letter_context(db, case, opinion, institution=institution, verification_code=code, version=version,
                             now=now, key_images=key_images, change_summary=change_summary, previous=previous)
    pdf = render_letter_pdf(context, storage=storage)
    key, _ = storage.put_bytes(pdf)
    letter = Letter(case_id=case.id, opinion_id=opinion.id, version=version, blob_key=key,
                    sha256=hashlib.sha256(pdf).hexdigest(), verification_code=code, issued_at=now, delivered_at=now,
                    addendum_id=addendum.id if addendum is not None else None, change_summary=change_summary)
    db.add(letter)
    # A new version (an addendum) is delivered again and awaits acknowledgement; a closed case stays closed.
    if case.status in (CaseStatus.OPINION_SIGNED, CaseStatus.LETTER_DELIVERED, CaseStatus.ACKNOWLEDGED):
        transition(case, CaseStatus.LETTER_DELIVERED, now, by=by, ip=ip, why=f"letter version {version} issued")
    db.flush()
    record(db, action="letter.issued", by=by, ip=ip, now=now, case=case, object_type="letter",
           object_id=letter.id, detail=f"version={version}; sha256={letter.sha256}"
           + (f"; addendum={addendum.number}" if addendum is not None else ""))

    notify(db, case.referring, kind="letter_ready", case=case, now=now,
           text=f"The second-opinion letter for case {case.reference} (version {version}) is ready to download.")
    return letter


def preview_letter_pdf(db: Session, storage: Storage, case, opinion, *, institution: dict, by, ip: str,
                       now: datetime, pending_addendum: dict | None = None) -> bytes:
    """The letter as it will be issued, for the signer to read first: never stored, never delivered.

    Every page says DRAFT and it carries no verification code, version or signing time: those exist only at
    signing. `pending_addendum` ({"reason", "text"}) shows an addendum not yet signed in the next version.
    """
    previous = list(db.scalars(select(Letter).where(Letter.case_id == case.id).order_by(Letter.version)))
    context = letter_context(db, case, opinion, institution=institution, verification_code="", version=len(previous) + 1,
                             now=now, key_images=key_images_for_letter(db, case.id), previous=previous)
    context["draft"] = True
    context["signed_at"] = ""
    context["content_sha256"] = ""
    if opinion.reviewer is None or not opinion.is_signed:
        context["reviewer"] = {"name": by.name, "credentials": by.credentials, "specialty_label": by.specialty_label,
                               "institution": by.institution.name if by.institution else ""}
    if pending_addendum:
        context["addenda"] = context["addenda"] + [{
            "number": len(context["addenda"]) + 1, "reason": pending_addendum.get("reason", ""),
            "text": pending_addendum.get("text", ""), "signed_by": by.display_name, "signed_at": "", "sha256": ""}]
        context["change_summary"] = addendum_summary(len(context["addenda"]), pending_addendum.get("reason", ""), now)
    record(db, action="letter.previewed", by=by, ip=ip, now=now, case=case, object_type="opinion", object_id=opinion.id,
           detail="with a pending addendum" if pending_addendum else "")
    return render_letter_pdf(context, storage=storage)


def addendum_summary(number: int, reason: str, now: datetime) -> str:
    """'Addendum 2 of 3 December 2026: <reason>.' without doubling the reason's own final punctuation."""
    reason = (reason or "").strip()
    text = f"Addendum {number} of {now.day} {now:%B %Y}" + (f": {reason}" if reason else "")
    return text if text[-1] in ".?!" else text + "."


def latest_letter_of_opinion(db: Session, opinion_id: int) -> Letter | None:
    return db.scalar(select(Letter).where(Letter.opinion_id == opinion_id).order_by(Letter.version.desc()))


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
    record(db, action="letter.downloaded", by=by, ip=ip, now=now, case=case, object_type="letter", object_id=letter.id,
           detail=f"version={letter.version}")


def acknowledge_letter(db: Session, case, *, by, ip: str, now: datetime) -> Letter:
    """The referring physician confirms receipt; follow-up questions stay possible until the case is closed."""
    if not can_acknowledge(by, case):
        if by.id == case.referring_id:
            raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; there is no letter to acknowledge.")
        raise PermissionDenied("Only the referring physician can acknowledge the letter.")
    letter = letters_for_case(db, case.id)[0]
    letter.acknowledged_at = now
    letter.acknowledged_by_id = by.id
    # The summary for the patient is delivered with the letter and acknowledged with it.
    summary = db.scalar(select(PatientSummary).where(PatientSummary.case_id == case.id, PatientSummary.status == "signed")
                        .order_by(PatientSummary.number.desc()).limit(1))
    if summary is not None and summary.acknowledged_at is None:
        summary.acknowledged_at = now
    transition(case, CaseStatus.ACKNOWLEDGED, now, by=by, ip=ip, why=f"receipt of letter version {letter.version}")
    record(db, action="letter.acknowledged", by=by, ip=ip, now=now, case=case, object_type="letter", object_id=letter.id)
    return letter


@dataclass(frozen=True)
class AwaitingReceipt:
    """A delivered letter the referring physician has not acknowledged yet (the current version only)."""

    case: Case
    letter: Letter
    days_waiting: int
    resent_count: int
    last_resent_at: datetime | None

    @property
    def downloaded(self) -> bool:
        return self.letter.first_downloaded_at is not None


def letters_awaiting_acknowledgement(db: Session, *, now: datetime) -> list[AwaitingReceipt]:
    """Cases whose letter is delivered but not acknowledged, longest waiting first.

    Re-sends are read back from the audit log (action "letter.resent"), which records each one anyway.
    """
    rows = db.execute(
        select(Letter, Case).join(Case, Case.id == Letter.case_id)
        .where(Case.status == CaseStatus.LETTER_DELIVERED.value, Letter.acknowledged_at.is_(None))
        .order_by(Letter.case_id, Letter.version.desc())
    ).all()
    current: dict[int, tuple[Letter, Case]] = {}
    for letter, case in rows:
        current.setdefault(case.id, (letter, case))  # highest version first within each case
    if not current:
        return []
    resends = {
        object_id: (count, last) for object_id, count, last in db.execute(
            select(AuditEvent.object_id, func.count(), func.max(AuditEvent.at))
            .where(AuditEvent.action == "letter.resent", AuditEvent.object_type == "letter",
                   AuditEvent.object_id.in_([str(letter.id) for letter, _ in current.values()]))
            .group_by(AuditEvent.object_id))
    }
    found = []
    for letter, case in current.values():
        delivered = letter.delivered_at or letter.issued_at
        count, last = resends.get(str(letter.id), (0, None))
        found.append(AwaitingReceipt(case=case, letter=letter, days_waiting=max(0, (now - delivered).days),
                                     resent_count=count, last_resent_at=last))
    found.sort(key=lambda row: (row.letter.delivered_at or row.letter.issued_at, row.case.id))
    return found


def resend_letter(db: Session, case, *, by, ip: str, now: datetime) -> Letter:
    """Tell the referring physician again (portal and e-mail) that the current letter waits for them.

    The e-mail, like every notification, names only the case reference and links to the portal.
    """
    if not can_resend_letter(by, case):
        if by.role in ("coordinator", "admin"):
            raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; there is no unacknowledged "
                                    "letter to re-send.")
        raise PermissionDenied("Only a coordinator can re-send a letter.")
    letter = letters_for_case(db, case.id)[0]

    delivered = letter.delivered_at or letter.issued_at
    notify(db, case.referring, kind="letter_resent", case=case, now=now,
           text=f"Reminder: the second-opinion letter for case {case.reference} (version {letter.version}), delivered "
                f"{_long_date(delivered)}, is waiting for you. Please download it and acknowledge receipt.")
    record(db, action="letter.resent", by=by, ip=ip, now=now, case=case, object_type="letter", object_id=letter.id,
           detail=f"version={letter.version}; to={case.referring.email}")
    return letter


def verify_letter(db: Session, code: str) -> dict | None:
    """The public check: only whether the code matches an issued letter, when, and the PDF's sha256.

    Deliberately no case, patient or reviewer data, and one answer for "malformed" and "unknown".
    """
    normalised = normalise_code(code)
    if normalised is None:
        return None
    letter = db.scalar(select(Letter).where(Letter.verification_code == normalised))
    if letter is None:
        return None
    newer = db.scalar(select(Letter.issued_at).where(Letter.case_id == letter.case_id, Letter.version > letter.version)
                      .order_by(Letter.version.desc()).limit(1))
    return {"code": normalised, "issued_at": letter.issued_at, "sha256": letter.sha256, "version": letter.version,
            "superseded_at": newer}
