"""Referral intake and the case's own state changes (withdrawal). Services flush, never commit."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth.models import Role, User
from review_portal.cases.disciplines import by_key
from review_portal.cases.lifecycle import FHIR_TASK_STATUS, CaseStatus, transition
from review_portal.cases.models import (
    CANCER_SITES,
    HISTORY_KINDS,
    PRIORITIES,
    REVIEW_TYPES,
    SEXES,
    Case,
    Discipline,
    Document,
    HistoryEntry,
)
from review_portal.cases.permissions import can_cancel, can_close, can_view_case, can_withdraw, is_staff
from review_portal.deadlines import add_business_days
from review_portal.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from review_portal.storage import Storage
from review_portal.uploads import UploadedFile


@dataclass(frozen=True)
class HistoryItem:
    occurred_on: date
    kind: str
    text: str


@dataclass(frozen=True, kw_only=True)
class Referral:
    patient_name: str
    patient_dob: date
    patient_sex: str
    patient_mrn: str
    question: str
    diagnosis_in_question: str
    plan_in_question: str
    cancer_site: str
    priority: str
    history: list[HistoryItem] = field(default_factory=list)
    # The disciplines the referrer asks for (cases.models.Discipline keys): the first is the lead review,
    # the others contributing reviews. Never inferred from the question.
    disciplines: tuple[str, ...] = ()
    # Derived from the lead discipline; a caller may still name it, and then it must agree.
    review_type: str = ""
    # Up to five questions in the patient's own words (cases.questions), optional.
    patient_questions: tuple[str, ...] = ()


def validate_referral(referral: Referral, now: datetime) -> None:
    problems = []
    if referral.review_type and referral.review_type not in REVIEW_TYPES:
        problems.append("Choose a review type.")
    if referral.cancer_site not in CANCER_SITES:
        problems.append("Choose a cancer site.")
    if referral.priority not in PRIORITIES:
        problems.append("Choose a priority.")
    if referral.patient_sex not in SEXES:
        problems.append("Choose the patient's sex.")
    if referral.patient_dob > now.date():
        problems.append("The date of birth is in the future.")
    for item in referral.history:
        if item.kind not in HISTORY_KINDS:
            problems.append(f"Unknown history entry kind {item.kind!r}.")
    for name in ("patient_name", "patient_mrn", "question", "diagnosis_in_question", "plan_in_question"):
        if not getattr(referral, name).strip():
            problems.append(f"{name.replace('_', ' ').capitalize()} is required.")
    if problems:
        raise InvalidInput(" ".join(problems))


MAX_DISCIPLINES = 5
# A legacy review type that names one discipline without doubt; "oncology_opinion" does not (which oncology?).
DISCIPLINE_FOR_REVIEW_TYPE = {"radiology_read": "radiology", "pathology_review": "pathology"}


def chosen_disciplines(db: Session, referral: Referral) -> list[Discipline]:
    """The active disciplines the referral asks for, lead first; refuses unknown, inactive or missing ones."""
    keys = list(dict.fromkeys(k for k in referral.disciplines if k))
    if not keys and referral.review_type in DISCIPLINE_FOR_REVIEW_TYPE:
        keys = [DISCIPLINE_FOR_REVIEW_TYPE[referral.review_type]]
    if not keys:
        raise InvalidInput("Choose the discipline the question needs (for example medical or radiation oncology).")
    if len(keys) > MAX_DISCIPLINES:
        raise InvalidInput(f"Choose at most {MAX_DISCIPLINES} disciplines.")
    known = by_key(db)
    unknown = [k[:40] for k in keys if k not in known or not known[k].active]
    if unknown:
        raise InvalidInput(f"Not a discipline we offer: {', '.join(unknown)}.")
    chosen = [known[k] for k in keys]
    if referral.review_type and referral.review_type != chosen[0].review_type:
        raise InvalidInput(f"The review type {referral.review_type} does not fit the discipline {chosen[0].label}.")
    return chosen


def is_pdf(path: Path) -> bool:
    return document_type(path) == "application/pdf"


# Accepted report formats, recognised by their content (the name and the browser's claim are ignored).
DOCUMENT_TYPES = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg", "image/tiff": "tif",
                  "image/gif": "gif", "image/webp": "webp"}


def document_type(path: Path) -> str | None:
    """The real type of a document from its first bytes, or None when it is not an accepted format."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if head.lstrip().startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def open_case(
    db: Session,
    storage: Storage,
    referral: Referral,
    *,
    documents: list[UploadedFile],
    by: User,
    ip: str,
    now: datetime,
    turnaround_days: dict[str, int],
    holidays: frozenset[date] = frozenset(),
    scan_files: int = 0,
) -> Case:
    """Create the case with its history and documents, due after the priority's turnaround.

    Wrong document types refuse the whole referral before anything is written. Routing and the scans
    are the workflow's next steps (see workflow.referrals.submit_referral).
    """
    if by.role != Role.REFERRING:
        raise InvalidInput("Only referring physicians submit referrals.")
    validate_referral(referral, now)
    lead = chosen_disciplines(db, referral)[0]
    not_accepted = [d.filename for d in documents if document_type(d.path) is None]
    if not_accepted:
        raise InvalidInput("Reports must be PDF files or images (PNG, JPEG, TIFF, GIF, WebP); these are not: "
                           + ", ".join(n[:100] for n in not_accepted[:20]) + ".")

    case = Case(
        reference=f"pending-{now.timestamp()}-{by.id}",
        status=CaseStatus.SUBMITTED.value,
        fhir_status=FHIR_TASK_STATUS[CaseStatus.SUBMITTED],
        review_type=lead.review_type,
        discipline=lead.key,
        cancer_site=referral.cancer_site,
        priority=referral.priority,
        referring_id=by.id,
        patient_name=referral.patient_name.strip(),
        patient_dob=referral.patient_dob,
        patient_sex=referral.patient_sex,
        patient_mrn=referral.patient_mrn.strip(),
        question=referral.question.strip(),
        diagnosis_in_question=referral.diagnosis_in_question.strip(),
        plan_in_question=referral.plan_in_question.strip(),
        submitted_at=now,
        due_at=add_business_days(now, turnaround_days[referral.priority], holidays),
        updated_at=now,
    )
    db.add(case)
    db.flush()
    case.reference = f"SO-{now.year}-{case.id:05d}"
    for item in referral.history:
        case.history.append(HistoryEntry(occurred_on=item.occurred_on, kind=item.kind, text=item.text.strip()))
    for doc in documents:
        add_document(db, storage, case, doc, by=by, now=now)
    record(db, action="case.submitted", by=by, ip=ip, now=now, case=case, object_type="case", object_id=case.id,
           detail=f"documents={len(documents)}; scan files={scan_files}; "
                  f"disciplines={','.join(dict.fromkeys(referral.disciplines)) or lead.key}")
    return case


def add_document(db: Session, storage: Storage, case: Case, upload: UploadedFile, *, by: User, now: datetime) -> Document:
    content_type = document_type(upload.path) or "application/octet-stream"
    key, _ = storage.put_file(upload.path)
    # Only the base name, and the extension of the real type, so the name cannot lie about the content.
    stem = Path(upload.filename.replace("\\", "/")).stem[:200] or "report"
    doc = Document(
        filename=f"{stem}.{DOCUMENT_TYPES.get(content_type, 'bin')}",
        content_type=content_type,
        size=upload.path.stat().st_size,
        sha256=key,
        uploaded_at=now,
        uploaded_by_id=by.id,
    )
    case.documents.append(doc)
    return doc


def withdraw_case(db: Session, case: Case, *, reason: str, by: User, ip: str, now: datetime) -> None:
    """The referring physician takes the referral back (a coordinator may do it on their behalf)."""
    if not (is_staff(by) or case.referring_id == by.id):
        raise PermissionDenied("Only the referring physician or a coordinator can withdraw a case.")
    if not can_withdraw(by, case):
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; it can no longer be withdrawn.")
    case.hold_started_at = None
    transition(case, CaseStatus.WITHDRAWN, now, by=by, ip=ip, why=reason.strip()[:500])
    record(db, action="case.withdrawn", by=by, ip=ip, now=now, case=case, detail=reason[:500])


def cancel_case(db: Session, case: Case, *, reason: str, by: User, ip: str, now: datetime) -> None:
    """The service stops a case it will not answer (duplicate, out of scope); coordinators only."""
    if not is_staff(by):
        raise PermissionDenied("Only a coordinator can cancel a case.")
    if not can_cancel(by, case):
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; it can no longer be cancelled.")
    if not reason.strip():
        raise InvalidInput("Say why the case is cancelled.")
    case.hold_started_at = None
    transition(case, CaseStatus.CANCELLED, now, by=by, ip=ip, why=reason.strip()[:500])
    record(db, action="case.cancelled", by=by, ip=ip, now=now, case=case, detail=reason.strip()[:500])


def close_case(db: Session, case: Case, *, by: User, ip: str, now: datetime, why: str = "") -> None:
    """Close after the letter: no further follow-up questions."""
    if not can_close(by, case):
        if can_view_case(by, case):
            raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; you cannot close it now.")
        raise PermissionDenied("You cannot close this case.")
    transition(case, CaseStatus.CLOSED, now, by=by, ip=ip, why=why or "closed")


def get_case_for(db: Session, user: User, case_id: int, *, options=()) -> Case:
    """Load a case the user may see, or raise NotFound (never reveal that it exists).

    `options` are loader options for what the caller will show (see CASE_PAGE_LOAD)."""
    if not 0 < case_id < 2**31:  # beyond the id column: nothing there (and the driver would overflow)
        raise NotFound("No such case.")
    case = db.get(Case, case_id, options=list(options))
    if case is None:
        raise NotFound("No such case.")
    if not can_view_case(user, case):
        if is_staff(user):
            from review_portal.cases.emergency import EmergencyAccessRequired

            raise EmergencyAccessRequired(case)
        raise NotFound("No such case.")
    return case


