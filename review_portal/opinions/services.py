"""Drafting and signing the reviewer's opinion. A signed opinion is never edited."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth.services import check_password
from review_portal.cases.lifecycle import CaseStatus, transition
from review_portal.cases.permissions import can_file_opinion
from review_portal.errors import ConcurrentEdit, IllegalTransition, InvalidInput, PermissionDenied
from review_portal.opinions.models import DIAGNOSIS_CONCORDANCE, PLAN_CONCORDANCE, Opinion


@dataclass(frozen=True)
class OpinionDraft:
    diagnosis_concordance: str = ""
    plan_concordance: str = ""
    reviewer_diagnosis: str = ""
    recommended_plan: str = ""
    rationale: str = ""
    further_tests: str = ""


def opinion_for_case(db: Session, case_id: int) -> Opinion | None:
    return db.scalar(select(Opinion).where(Opinion.case_id == case_id))


def save_draft(db: Session, case, draft: OpinionDraft, *, based_on_version: int | None, by, ip: str, now: datetime) -> Opinion:
    """Create or update the draft. `based_on_version` is the version the reviewer's form was loaded from."""
    if not can_file_opinion(by, case):
        raise PermissionDenied("Only the assigned reviewer can write the opinion on an open case.")
    if draft.diagnosis_concordance and draft.diagnosis_concordance not in DIAGNOSIS_CONCORDANCE:
        raise InvalidInput("Unknown diagnosis concordance.")
    if draft.plan_concordance and draft.plan_concordance not in PLAN_CONCORDANCE:
        raise InvalidInput("Unknown plan concordance.")
    opinion = opinion_for_case(db, case.id)
    if opinion is None:
        opinion = Opinion(case_id=case.id, reviewer_id=by.id, status="draft", created_at=now, updated_at=now)
        db.add(opinion)
    else:
        if opinion.is_signed:
            raise IllegalTransition("This opinion is signed and can no longer be edited.")
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
        transition(case, CaseStatus.IN_REVIEW, now)
    db.flush()
    record(db, action="opinion.draft_saved", by=by, ip=ip, now=now, case=case, object_type="opinion", object_id=opinion.id)
    return opinion


def missing_for_signature(opinion: Opinion) -> list[str]:
    required = {
        "diagnosis_concordance": "diagnosis concordance",
        "plan_concordance": "plan concordance",
        "reviewer_diagnosis": "your diagnosis",
        "recommended_plan": "recommended plan",
        "rationale": "rationale",
    }
    return [label for name, label in required.items() if not getattr(opinion, name)]


def signed_content_hash(opinion: Opinion, case) -> str:
    content = {
        "case": case.reference,
        "reviewer_id": opinion.reviewer_id,
        "signed_at": opinion.signed_at.isoformat(),
        **{k: getattr(opinion, k) for k in OpinionDraft.__dataclass_fields__},
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def sign_opinion(db: Session, case, *, password: str, attested: bool, by, ip: str, now: datetime) -> Opinion:
    """Sign the draft: re-check the reviewer's password, freeze the content, move the case on."""
    if not can_file_opinion(by, case):
        raise PermissionDenied("Only the assigned reviewer can sign the opinion on an open case.")
    opinion = opinion_for_case(db, case.id)
    if opinion is None:
        raise InvalidInput("Save a draft of the opinion before signing it.")
    if opinion.is_signed:
        raise IllegalTransition("This opinion is already signed.")
    if not attested:
        raise InvalidInput("Confirm that you reviewed the submitted images and records.")
    if not check_password(by, password):
        record(db, action="opinion.sign_refused", by=by, ip=ip, now=now, case=case, detail="wrong password")
        raise InvalidInput("The password is not correct; the opinion was not signed.")
    missing = missing_for_signature(opinion)
    if missing:
        raise InvalidInput("Complete these before signing: " + ", ".join(missing) + ".")
    transition(case, CaseStatus.OPINION_SIGNED, now)
    opinion.status = "signed"
    opinion.signed_at = now
    opinion.updated_at = now
    opinion.content_sha256 = signed_content_hash(opinion, case)
    db.flush()
    record(db, action="opinion.signed", by=by, ip=ip, now=now, case=case, object_type="opinion",
           object_id=opinion.id, detail=f"sha256={opinion.content_sha256}")
    return opinion


def sign_and_issue_letter(db: Session, storage, case, *, password: str, attested: bool, institution: dict,
                          by, ip: str, now: datetime):
    """Sign, then render and deliver the letter through the job interface.

    Inline (the embedded default) the letter exists when this returns; with a worker queue it is
    rendered after the commit and this returns None (the case page shows the job's progress).
    """
    from review_portal import jobs
    from review_portal.letters.models import Letter

    opinion = sign_opinion(db, case, password=password, attested=attested, by=by, ip=ip, now=now)
    job = jobs.submit(db, storage, "letters.issue", now=now, case_id=case.id, opinion_id=opinion.id, by_id=by.id, ip=ip,
                      institution=dict(institution))
    if job.status != jobs.DONE:
        return None
    return db.scalar(select(Letter).where(Letter.opinion_id == opinion.id))
