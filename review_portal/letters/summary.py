"""The summary for the patient: started after the letter is issued, drafted by the lead reviewer, signed with
the password again and delivered as its own PDF beside the letter.

Services take plain arguments, flush but never commit, and write their audit rows in the same transaction.
A signed version is never changed: `start_summary` on a signed summary opens the next version.
"""
from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth.services import check_password
from review_portal.cases.questions import patient_questions_for
from review_portal.errors import ConcurrentEdit, IllegalTransition, InvalidInput, NotFound, PermissionDenied
from review_portal.imaging.services import key_images_for_letter, series_of_case
from review_portal.letters.models import Letter
from review_portal.letters.render import render_letter_pdf
from review_portal.letters.summary_lifecycle import SummaryStatus, transition
from review_portal.letters.summary_models import PatientSummary
from review_portal.letters.summary_text import READING_FORMULA, TARGET_GRADE, glossary_for, prefill, reading_level
from review_portal.notifications.services import notify
from review_portal.opinions.services import opinion_for_case
from review_portal.storage import Storage

MAX_SECTION = 8000
MAX_ANSWER = 4000
TEMPLATE = "letters/patient_summary.html"
SECTIONS = ("what_reviewed", "conclusion", "treatment")
SECTION_LABELS = {"what_reviewed": "What we looked at", "conclusion": "What the specialists concluded",
                  "treatment": "What it may mean for your treatment"}


class SummarySignatureRefused(InvalidInput):
    """A wrong password at signing: the refusal stays in the audit trail."""


@dataclass(frozen=True)
class SummaryDraft:
    what_reviewed: str = ""
    conclusion: str = ""
    treatment: str = ""
    answers: tuple[str, ...] = ()  # one per patient question, in their order
    key_images: tuple[str, ...] = field(default=())  # png keys of the case's key images the lead picked


# --- Loading and access -------------------------------------------------------------------------------------

def summaries_for_case(db: Session, case_id: int) -> list[PatientSummary]:
    """Every version, newest first."""
    return list(db.scalars(select(PatientSummary).where(PatientSummary.case_id == case_id)
                           .order_by(PatientSummary.number.desc())))


def signed_summaries_for_case(db: Session, case_id: int) -> list[PatientSummary]:
    return [s for s in summaries_for_case(db, case_id) if s.is_signed]


def latest_summary(db: Session, case_id: int) -> PatientSummary | None:
    return db.scalar(select(PatientSummary).where(PatientSummary.case_id == case_id)
                     .order_by(PatientSummary.number.desc()).limit(1))


def get_signed_summary_in_case(db: Session, case_id: int, summary_id: int) -> PatientSummary:
    summary = db.scalar(select(PatientSummary).where(PatientSummary.id == summary_id, PatientSummary.case_id == case_id,
                                                     PatientSummary.status == SummaryStatus.SIGNED.value))
    if summary is None:
        raise NotFound("No such summary for the patient.")
    return summary


def _latest_letter(db: Session, case_id: int) -> Letter | None:
    return db.scalar(select(Letter).where(Letter.case_id == case_id).order_by(Letter.version.desc()).limit(1))


def can_write_summary(db: Session, user, case) -> bool:
    """The lead reviewer (who signed the opinion) writes it, once the letter has been issued."""
    opinion = opinion_for_case(db, case.id)
    return (opinion is not None and opinion.is_signed and opinion.reviewer_id == getattr(user, "id", None)
            and _latest_letter(db, case.id) is not None)


def _require_writer(db: Session, user, case):
    opinion = opinion_for_case(db, case.id)
    if opinion is None or not opinion.is_signed or _latest_letter(db, case.id) is None:
        raise IllegalTransition("The summary for the patient is written after the opinion is signed and the letter issued.")
    if opinion.reviewer_id != user.id:
        raise PermissionDenied("Only the lead reviewer who signed the opinion writes the summary for the patient.")
    return opinion


# --- Drafting -----------------------------------------------------------------------------------------------

def _prefilled_answers(questions: list[str], earlier: list[dict] | None = None) -> list[dict]:
    before = {item.get("question"): item.get("answer", "") for item in earlier or []}
    return [{"question": q, "answer": before.get(q, "")} for q in questions]


def start_summary(db: Session, case, *, by, ip: str, now: datetime) -> PatientSummary:
    """The draft to edit: the open draft if there is one; else version 1 prefilled from the signed opinion, or
    (after a signature) the next version started from the signed text."""
    opinion = _require_writer(db, by, case)
    latest = latest_summary(db, case.id)
    if latest is not None and not latest.is_signed:
        return latest
    questions = patient_questions_for(db, case.id)
    if latest is None:
        counts = {"scans": len(series_of_case(db, case.id)), "reports": len(case.documents), "history": len(case.history)}
        values = prefill({name: getattr(opinion, name) for name in (
            "diagnosis_concordance", "plan_concordance", "reviewer_diagnosis", "recommended_plan", "radpeer_score",
            "impression")}, referrer=case.referring.display_name, **counts)
        answers, key_images, number = _prefilled_answers(questions), [], 1
    else:
        values = {name: getattr(latest, name) for name in SECTIONS}
        answers, key_images, number = _prefilled_answers(questions, latest.answers), list(latest.key_images), latest.number + 1
    summary = PatientSummary(case_id=case.id, opinion_id=opinion.id, number=number, status=SummaryStatus.DRAFT.value,
                             author_id=by.id, answers=answers, key_images=key_images, created_at=now, updated_at=now,
                             **values)
    summary.grade = reading_level(summary.full_text).grade
    db.add(summary)
    try:
        db.flush()
    except IntegrityError:
        raise ConcurrentEdit("The summary was started in another tab or window at the same moment. Reload the page.") from None
    record(db, action="patient_summary.started", by=by, ip=ip, now=now, case=case, object_type="patient_summary",
           object_id=summary.id, detail=f"version={number}" + ("; from the signed version" if latest else "; prefilled"))
    return summary


def _clean(text, limit: int, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be text.")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text):
        raise InvalidInput(f"{what} contains a control character.")
    text = text.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters.")
    return text


def save_summary(db: Session, case, draft: SummaryDraft, *, based_on_version: int | None, by, ip: str,
                 now: datetime) -> PatientSummary:
    """Save the open draft. `based_on_version` is the version the page holds: a save based on anything else is
    refused with ConcurrentEdit (a stale tab never overwrites newer text). The reading level is recomputed."""
    _require_writer(db, by, case)
    summary = latest_summary(db, case.id)
    if summary is None:
        raise IllegalTransition("Start the summary for the patient first.")
    if summary.is_signed:
        raise IllegalTransition("This version of the summary is signed and cannot be changed. Start a new version instead.")
    if based_on_version is not None and based_on_version != summary.version:
        raise ConcurrentEdit("This summary was changed elsewhere (another tab or window) since you opened it. "
                             "Reload the page to see the latest version; your text below was not saved.")
    values = {name: _clean(getattr(draft, name), MAX_SECTION, SECTION_LABELS[name]) for name in SECTIONS}
    questions = [item["question"] for item in summary.answers or []]
    if len(draft.answers) > len(questions):
        raise InvalidInput(f"There are {len(questions)} patient questions to answer, not {len(draft.answers)}.")
    answers = [_clean(a, MAX_ANSWER, f"The answer to question {n}") for n, a in enumerate(draft.answers, start=1)]
    answers += [""] * (len(questions) - len(answers))
    offered = {image["png_key"] for image in key_images_for_letter(db, case.id)}
    chosen = list(dict.fromkeys(draft.key_images))
    if any(key not in offered for key in chosen):
        raise InvalidInput("Choose key images among those marked on this case.")
    for name, value in values.items():
        setattr(summary, name, value)
    summary.answers = [{"question": q, "answer": a} for q, a in zip(questions, answers, strict=True)]
    summary.key_images = [{"png_key": key} for key in chosen]
    summary.grade = reading_level(summary.full_text).grade
    summary.updated_at = now
    db.flush()
    record(db, action="patient_summary.draft_saved", by=by, ip=ip, now=now, case=case, object_type="patient_summary",
           object_id=summary.id, detail=f"version={summary.number}; grade={summary.grade}")
    return summary


def missing_for_signature(summary: PatientSummary) -> list[str]:
    missing = [SECTION_LABELS[name].lower() for name in SECTIONS if not getattr(summary, name).strip()]
    missing += [f"an answer to question {n}" for n, item in enumerate(summary.answers or [], start=1)
                if not item.get("answer", "").strip()]
    return missing


# --- Signing and the PDF ------------------------------------------------------------------------------------

def content_hash(summary: PatientSummary, case) -> str:
    content = {"case": case.reference, "number": summary.number, "signed_by_id": summary.signed_by_id,
               "signed_at": summary.signed_at.isoformat(), "answers": summary.answers,
               "key_images": summary.key_images, **{name: getattr(summary, name) for name in SECTIONS}}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _stamp(d: datetime) -> str:
    return f"{d.day} {d:%B %Y}, {d:%H:%M} UTC"


def summary_context(db: Session, case, summary: PatientSummary, *, institution: dict, signer, now: datetime,
                    letter: Letter | None) -> dict:
    """Plain values only, as for the letter: the template never sees a database object."""
    chosen = {item["png_key"] for item in summary.key_images or []}
    key_images = [image for image in key_images_for_letter(db, case.id) if image["png_key"] in chosen]
    level = reading_level(summary.full_text)
    return {
        "institution": {k: v for k, v in dict(institution).items() if k != "verification_url"},
        "case_reference": case.reference,
        "patient_name": case.patient_name,
        "referrer_name": case.referring.display_name,
        "summary_date": f"{now.day} {now:%B %Y}",
        "version": summary.number,
        "letter_version": letter.version if letter is not None else "",
        "sections": [{"title": SECTION_LABELS[name], "text": getattr(summary, name)} for name in SECTIONS],
        "answers": [{"question": item.get("question", ""), "answer": item.get("answer", "")} for item in summary.answers or []],
        "glossary": glossary_for(summary.full_text),
        "key_images": key_images,
        "reading_grade": "" if level.grade is None else f"{level.grade:.1f}",
        "reading_formula": READING_FORMULA,
        "reading_target": f"{TARGET_GRADE:g}",
        "signer": {"name": signer.name, "credentials": signer.credentials or "",
                   "specialty_label": signer.specialty_label or ""},
        "signed_at": _stamp(summary.signed_at) if summary.signed_at else "",
        "content_sha256": summary.content_sha256 or "",
    }


def render_summary_pdf(context: dict, storage: Storage | None) -> bytes:
    title = f"Summary for the patient – {context['case_reference']}"
    subject = f"Summary for the patient, case {context['case_reference']}, version {context['version']}"
    return render_letter_pdf(context, storage=storage, template_name=TEMPLATE,
                             metadata=(title, context["signer"]["name"], subject))


def sign_summary(db: Session, storage: Storage, case, *, password: str, attested: bool, based_on_version: int | None,
                 institution: dict, by, ip: str, now: datetime) -> PatientSummary:
    """Sign the open draft: the password again, every section and answer present, the words frozen with their
    sha256, the PDF rendered (PDF/A, the letter's URL-fetcher rules) and delivered beside the letter."""
    _require_writer(db, by, case)
    summary = latest_summary(db, case.id)
    if summary is None:
        raise InvalidInput("Write the summary for the patient before signing it.")
    if summary.is_signed:
        raise IllegalTransition("This version of the summary is already signed. Start a new version to change it.")
    if based_on_version is not None and based_on_version != summary.version:
        raise ConcurrentEdit("The summary was changed in another tab or window since this page showed it. "
                             "Reload the page, read the latest text, then sign.")
    if not attested:
        raise InvalidInput("Confirm that the summary is yours and agrees with the signed opinion.")
    if not check_password(by, password or ""):
        record(db, action="patient_summary.sign_refused", by=by, ip=ip, now=now, case=case, detail="wrong password",
               survive_rollback=True)
        raise SummarySignatureRefused("The password is not correct; the summary was not signed.")
    missing = missing_for_signature(summary)
    if missing:
        raise InvalidInput("Complete these before signing: " + ", ".join(missing) + ".")
    transition(summary, SummaryStatus.SIGNED, now)
    summary.signed_at = now
    summary.signed_by_id = by.id
    summary.content_sha256 = content_hash(summary, case)
    letter = _latest_letter(db, case.id)
    pdf = render_summary_pdf(summary_context(db, case, summary, institution=institution, signer=by, now=now,
                                             letter=letter), storage)
    summary.blob_key, _ = storage.put_bytes(pdf)
    summary.sha256 = hashlib.sha256(pdf).hexdigest()
    summary.letter_id = letter.id if letter is not None else None
    db.flush()
    record(db, action="patient_summary.signed", by=by, ip=ip, now=now, case=case, object_type="patient_summary",
           object_id=summary.id, detail=f"version={summary.number}; sha256={summary.content_sha256}; grade={summary.grade}")
    notify(db, case.referring, kind="letter_ready", case=case, now=now,
           text=f"A summary for the patient (version {summary.number}) of case {case.reference} is ready to download "
                "with the letter.")
    return summary


def record_summary_download(db: Session, case, summary: PatientSummary, *, by, ip: str, now: datetime) -> None:
    if by.id == case.referring_id and summary.first_downloaded_at is None:
        summary.first_downloaded_at = now
    record(db, action="patient_summary.downloaded", by=by, ip=ip, now=now, case=case, object_type="patient_summary",
           object_id=summary.id, detail=f"version={summary.number}")


def acknowledge_summary(db: Session, case, summary: PatientSummary, *, by, ip: str, now: datetime) -> PatientSummary:
    """The referrer confirms receipt of a summary signed after the letter was acknowledged (one delivered with the
    letter is acknowledged with it, letters.services.acknowledge_letter)."""
    if by.id != case.referring_id:
        raise PermissionDenied("Only the referring physician acknowledges the summary for the patient.")
    if summary.acknowledged_at is not None:
        raise IllegalTransition(f"Version {summary.number} of the summary for the patient is already acknowledged.")
    summary.acknowledged_at = now
    record(db, action="patient_summary.acknowledged", by=by, ip=ip, now=now, case=case, object_type="patient_summary",
           object_id=summary.id, detail=f"version={summary.number}")
    return summary


def cases_with_signed_summary(db: Session, case_ids=None) -> set[int]:
    """The cases whose letter went out with a signed summary for the patient (for the figures)."""
    query = select(PatientSummary.case_id).where(PatientSummary.status == SummaryStatus.SIGNED.value).distinct()
    if case_ids is not None:
        if not case_ids:
            return set()
        query = query.where(PatientSummary.case_id.in_(list(case_ids)))
    return set(db.scalars(query))


def count_letters_with_summary(db: Session, case_ids=None) -> int:
    return len(cases_with_signed_summary(db, case_ids))
