"""Drafting, signing and amending the reviewer's opinion.

A signed opinion is never edited: later changes are addenda, each signed on its own, and each
re-issues the letter as a new version (see `add_addendum`, the one service for addenda).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth.services import check_password
from review_portal.cases.lifecycle import CaseStatus, transition
from review_portal.cases.services import get_case_for
from review_portal.errors import ConcurrentEdit, IllegalTransition, InvalidInput, PermissionDenied
from review_portal.opinions.lifecycle import OpinionStatus
from review_portal.opinions.lifecycle import transition as opinion_transition
from review_portal.opinions.models import (
    DIAGNOSIS_CONCORDANCE,
    PLAN_CONCORDANCE,
    RADPEER,
    RADPEER_COMMENT_REQUIRED,
    TRIAL_CONSIDERATION,
    URGENCY,
    Addendum,
    Opinion,
)
from review_portal.opinions.permissions import can_add_addendum, can_write_consensus
from review_portal.opinions.section_lifecycle import check_consensus_may_be_signed
from review_portal.opinions.section_models import BoardChair, ConsensusPosition, OpinionSection

# Longest text a field accepts; the form says the same, the service enforces it for every caller.
MAX_TEXT = 16000
MAX_CODE = 16
MAX_ADDENDUM = 16000


class SignatureRefused(InvalidInput):
    """A wrong password at signing: the refusal itself must stay in the audit trail."""


@dataclass(frozen=True)
class OpinionDraft:
    # The first six keep their positions: older callers build drafts positionally.
    diagnosis_concordance: str = ""
    plan_concordance: str = ""
    reviewer_diagnosis: str = ""
    recommended_plan: str = ""
    rationale: str = ""
    further_tests: str = ""
    stage_text: str = ""
    tnm_t: str = ""
    tnm_n: str = ""
    tnm_m: str = ""
    trial_consideration: str = ""
    clinical_trials: str = ""
    urgency: str = ""
    findings: str = ""
    impression: str = ""
    radpeer_score: str = ""
    radpeer_comment: str = ""


DRAFT_FIELDS = tuple(OpinionDraft.__dataclass_fields__)
_CHOICES = {
    "diagnosis_concordance": DIAGNOSIS_CONCORDANCE,
    "plan_concordance": PLAN_CONCORDANCE,
    "trial_consideration": TRIAL_CONSIDERATION,
    "urgency": URGENCY,
    "radpeer_score": RADPEER,
}
_SHORT = {"tnm_t", "tnm_n", "tnm_m"}


def case_for_opinion(db: Session, user, case_id: int):
    """The case whose opinion `user` may edit now (the assigned reviewer, on an open case)."""
    case = get_case_for(db, user, case_id)
    if not can_write_consensus(user, case, chair_of(db, case.id)):
        raise PermissionDenied(f"Case {case.reference} is {case.status_label.lower()}; its opinion cannot be edited.")
    return case


def opinion_for_case(db: Session, case_id: int) -> Opinion | None:
    return db.scalar(select(Opinion).where(Opinion.case_id == case_id))


def chair_of(db: Session, case_id: int) -> BoardChair | None:
    """The chair a coordinator named for the case's consensus; None: the lead reviewer writes it."""
    return db.scalar(select(BoardChair).where(BoardChair.case_id == case_id))


def check_consensus_ready(db: Session, case) -> None:
    """The consensus waits for every contributing section (signed or waived) and every contributor's position."""
    sections = list(db.scalars(select(OpinionSection).where(OpinionSection.case_id == case.id)))
    if not sections and len(case.reviews) < 2:
        return
    positions = list(db.scalars(select(ConsensusPosition).where(ConsensusPosition.case_id == case.id)))
    check_consensus_may_be_signed(case, sections, positions)


def _validate_draft(draft: OpinionDraft) -> None:
    problems = []
    for name, value in asdict(draft).items():
        if not isinstance(value, str):
            problems.append(f"{name.replace('_', ' ')} must be text")
        elif name in _CHOICES and value and value not in _CHOICES[name]:
            problems.append(f"unknown {name.replace('_', ' ')} {value[:20]!r}")
        elif name in _SHORT and len(value) > MAX_CODE:
            problems.append(f"{name.replace('_', ' ').upper()} is at most {MAX_CODE} characters")
        elif len(value) > MAX_TEXT:
            problems.append(f"{name.replace('_', ' ')} is longer than {MAX_TEXT} characters")
    if problems:
        raise InvalidInput("The draft was not saved: " + "; ".join(problems) + ".")


def save_draft(db: Session, case, draft: OpinionDraft, *, based_on_version: int | None, by, ip: str, now: datetime) -> Opinion:
    """Create or update the draft.

    `based_on_version` is the version the reviewer's page holds (0: the page was opened before any draft
    existed). A save based on anything else is refused with ConcurrentEdit, so a stale tab never
    overwrites newer text. None skips the check (scripts and fixtures that own the draft alone).
    """
    if not can_write_consensus(by, case, chair_of(db, case.id)):
        raise PermissionDenied("Only the assigned reviewer can write the opinion on an open case.")
    _validate_draft(draft)
    opinion = opinion_for_case(db, case.id)
    if opinion is None:
        if based_on_version not in (None, 0):
            raise ConcurrentEdit("This draft no longer exists. Reload the page; your text below was not saved.")
        opinion = Opinion(case_id=case.id, reviewer_id=by.id, status=OpinionStatus.DRAFT.value, created_at=now,
                          updated_at=now)
        db.add(opinion)
    else:
        if opinion.is_signed:
            raise IllegalTransition("This opinion is signed and can no longer be edited. Add an addendum instead.")
        if based_on_version is not None and opinion.version != based_on_version:
            raise ConcurrentEdit(
                "This draft was changed elsewhere (another tab or window) since you opened it. "
                "Reload the page to see the latest version; your text below was not saved."
            )
        opinion.reviewer_id = by.id
    for name, value in asdict(draft).items():
        setattr(opinion, name, value.strip())
    opinion.updated_at = now
    if case.status == CaseStatus.ASSIGNED:
        transition(case, CaseStatus.IN_REVIEW, now, by=by, ip=ip, why="opinion drafted")
    try:
        db.flush()
    except IntegrityError:
        # Two first saves raced to create the draft: the later one must not win silently.
        raise ConcurrentEdit("This draft was started in another tab or window at the same moment. "
                             "Reload the page; your text below was not saved.") from None
    record(db, action="opinion.draft_saved", by=by, ip=ip, now=now, case=case, object_type="opinion",
           object_id=opinion.id, detail=f"version={opinion.version}")
    return opinion


def missing_for_signature(opinion: Opinion, review_type: str = "oncology_opinion") -> list[str]:
    if review_type == "radiology_read":
        required = {"findings": "findings", "impression": "impression", "radpeer_score": "RADPEER score"}
    else:
        required = {
            "diagnosis_concordance": "diagnosis concordance",
            "reviewer_diagnosis": "your diagnosis",
            "rationale": "rationale",
            "plan_concordance": "plan concordance",
            "recommended_plan": "recommended plan",
        }
    missing = [label for name, label in required.items() if not getattr(opinion, name)]
    if review_type == "radiology_read" and opinion.radpeer_score in RADPEER_COMMENT_REQUIRED and not opinion.radpeer_comment:
        missing.append(f"a comment on the discrepancy (RADPEER {opinion.radpeer_score} needs one)")
    return missing


def signed_content_hash(opinion: Opinion, case, measurements: list[dict] | None = None) -> str:
    """sha256 of what was signed; `measurements` (measurements.signed_measurements) are covered when there are any,
    so an opinion signed without them keeps the hash it always had."""
    content = {
        "case": case.reference,
        "reviewer_id": opinion.reviewer_id,
        "signed_at": opinion.signed_at.isoformat(),
        **{k: getattr(opinion, k) for k in DRAFT_FIELDS},
    }
    if measurements:
        content["measurements"] = measurements
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def check_signature(db: Session, case, *, password: str, attested: bool, by, ip: str, now: datetime, what: str) -> None:
    if not attested:
        raise InvalidInput("Confirm that you reviewed the submitted images and records.")
    if not check_password(by, password or ""):
        # Kept although the request rolls back: a refused signature is a security event.
        record(db, action=f"{what}.sign_refused", by=by, ip=ip, now=now, case=case, detail="wrong password",
               survive_rollback=True)
        raise SignatureRefused(f"The password is not correct; the {what} was not signed.")


def sign_opinion(db: Session, case, *, password: str, attested: bool, by, ip: str, now: datetime,
                 based_on_version: int | None = None, measurements: list[dict] | None = None) -> Opinion:
    """Sign the draft: re-check the reviewer's password, freeze the content, move the case on.

    `based_on_version` is the draft version the reviewer was looking at: if another tab saved since,
    signing is refused so nobody signs text they have not seen.
    """
    opinion = opinion_for_case(db, case.id)
    if opinion is not None and opinion.is_signed and opinion.reviewer_id == by.id:
        raise IllegalTransition("This opinion is already signed.")
    if not can_write_consensus(by, case, chair_of(db, case.id)):
        raise PermissionDenied("Only the assigned reviewer can sign the opinion on an open case.")
    if opinion is None:
        raise InvalidInput("Save a draft of the opinion before signing it.")
    if opinion.is_signed:
        raise IllegalTransition("This opinion is already signed.")
    check_consensus_ready(db, case)
    if based_on_version is not None and based_on_version != opinion.version:
        raise ConcurrentEdit("The draft was changed in another tab or window since this page showed it. "
                             "Reload the page, read the latest text, then sign.")
    check_signature(db, case, password=password, attested=attested, by=by, ip=ip, now=now, what="opinion")
    missing = missing_for_signature(opinion, case.review_type)
    if missing:
        raise InvalidInput("Complete these before signing: " + ", ".join(missing) + ".")
    return freeze_signed_opinion(db, case, opinion, by=by, ip=ip, now=now, measurements=measurements)


def freeze_signed_opinion(db: Session, case, opinion: Opinion, *, by, ip: str, now: datetime, note: str = "",
                          measurements: list[dict] | None = None) -> Opinion:
    """The signature itself, once every check has passed: who, when, the content's sha256, the case moves on."""
    transition(case, CaseStatus.OPINION_SIGNED, now, by=by, ip=ip, why="opinion signed")
    opinion.reviewer_id = by.id
    opinion.signed_at = now
    opinion.content_sha256 = signed_content_hash(opinion, case, measurements)
    # Guarded by the opinion's table, which writes the "opinion.signed" audit row.
    opinion_transition(opinion, OpinionStatus.SIGNED, now, by=by, ip=ip, case=case,
                       detail=f"sha256={opinion.content_sha256}" + (f"; {note}" if note else ""))
    db.flush()
    return opinion


def addendum_hash(case, opinion: Opinion, *, number: int, reason: str, text: str, by, now: datetime) -> str:
    content = {"case": case.reference, "opinion_sha256": opinion.content_sha256, "number": number,
               "reason": reason, "text": text, "signed_by_id": by.id, "signed_at": now.isoformat()}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def record_addendum(db: Session, case, text: str, *, reason: str = "", by, ip: str, now: datetime):
    """Store a signed addendum to the signed opinion (who, when, sha256); returns (opinion, addendum).

    The letter that carries it is the workflow's next step (workflow.signing.add_addendum)."""
    opinion = opinion_for_case(db, case.id)
    if opinion is None or not opinion.is_signed:
        raise IllegalTransition("An addendum can only follow a signed opinion; edit the draft instead.")
    if not can_add_addendum(by, case, opinion):
        raise PermissionDenied("Only the reviewer who signed the opinion can add an addendum.")
    text = (text or "").strip()
    reason = " ".join((reason or "").split())
    if not text:
        raise InvalidInput("Write the text of the addendum.")
    if len(text) > MAX_ADDENDUM:
        raise InvalidInput(f"The addendum is longer than {MAX_ADDENDUM} characters.")
    if len(reason) > 300:
        raise InvalidInput("Keep the reason for the addendum under 300 characters.")
    number = (db.scalar(select(func.max(Addendum.number)).where(Addendum.opinion_id == opinion.id)) or 0) + 1
    addendum = Addendum(opinion_id=opinion.id, case_id=case.id, number=number, reason=reason, text=text,
                        signed_by_id=by.id, signed_at=now,
                        content_sha256=addendum_hash(case, opinion, number=number, reason=reason, text=text, by=by, now=now))
    db.add(addendum)
    db.flush()
    record(db, action="opinion.addendum_signed", by=by, ip=ip, now=now, case=case, object_type="addendum",
           object_id=addendum.id, detail=f"number={number}; sha256={addendum.content_sha256}")
    return opinion, addendum
