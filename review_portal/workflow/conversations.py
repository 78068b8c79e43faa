"""Answers that change more than the conversation.

A request for information answered with reports and scans (the case resumes, the deadline moves by the
hold), and a follow-up question answered as a signed addendum (a new letter version).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from review_portal.assignment.sla import resume_deadlines
from review_portal.cases.lifecycle import CaseStatus, transition
from review_portal.cases.services import add_document, is_pdf
from review_portal.deadlines import SlaPolicy
from review_portal.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from review_portal.imaging.services import IngestReport, ingest_scans
from review_portal.messaging import permissions
from review_portal.messaging.lifecycle import RequestStatus
from review_portal.messaging.lifecycle import transition as request_transition
from review_portal.messaging.models import FollowUpQuestion, InformationRequest, Message
from review_portal.messaging.services import MAX_TEXT, open_request, record_follow_up_answer
from review_portal.notifications.services import notify
from review_portal.opinions.services import check_signature
from review_portal.storage import Storage
from review_portal.uploads import UploadedFile
from review_portal.workflow.signing import add_addendum


@dataclass(frozen=True)
class AnswerResult:
    request: InformationRequest
    documents: int
    scan_report: IngestReport | None


def answer_information_request(db: Session, storage: Storage, case, *, answer: str,
                               documents: list[UploadedFile] = (), scans: list[UploadedFile] = (), policy: SlaPolicy,
                               by, ip: str, now: datetime) -> AnswerResult:
    """The referrer answers (text and/or reports and scans); the case resumes and the deadline moves by the hold."""
    if not permissions.can_answer_information(by, case):
        if case.referring_id == by.id:
            raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; nothing is awaited from you.")
        raise PermissionDenied("Only the referring physician answers this request.")
    request = open_request(db, case.id)
    if request is None:
        raise NotFound("No open request for information on this case.")
    answer = (answer or "").strip()
    if not answer and not documents and not scans:
        raise InvalidInput("Write an answer or attach what was asked for.")
    if len(answer) > MAX_TEXT:
        raise InvalidInput(f"The answer is too long (at most {MAX_TEXT} characters).")
    not_pdf = [d.filename for d in documents if not is_pdf(d.path)]
    if not_pdf:
        raise InvalidInput("Reports must be PDF files; these are not: " + ", ".join(not_pdf) + ".")
    for doc in documents:
        add_document(db, storage, case, doc, by=by, now=now)
    scan_report = ingest_scans(db, storage, case, list(scans), by=by, ip=ip, now=now) if scans else None
    summary = ", ".join(x for x in (f"{len(documents)} report(s)" if documents else "",
                                    f"{len(scans)} scan file(s)" if scans else "") if x)
    request.answer = answer
    request.answered_at = now
    request.answered_by_id = by.id
    request.attachments_summary = summary
    db.add(Message(case_id=case.id, author_id=by.id, kind="information_answer",
                   body=(answer or "Attached what was asked for.") + (f"\n[{summary}]" if summary else ""), created_at=now))
    resume_deadlines(case, policy=policy, now=now)
    transition(case, CaseStatus.IN_REVIEW, now, by=by, ip=ip, why="requested information provided")
    # Guarded by the request's table, which writes the "information.answered" audit row.
    request_transition(request, RequestStatus.ANSWERED, now, by=by, ip=ip, case=case, detail=summary)
    db.flush()
    notify(db, request.requested_by, kind="information_answer", case=case, now=now,
           text=f"The referring physician answered your request on case {case.reference}; the case is back in review.")
    return AnswerResult(request, len(documents), scan_report)


def answer_follow_up(db: Session, storage: Storage, case, follow_up_id: int, *, answer: str, institution: dict,
                     password: str, attested: bool, by, ip: str, now: datetime) -> FollowUpQuestion:
    """Store the reviewer's answer and add it to the opinion as a signed addendum, which re-issues the letter.

    Like every signature, it needs the attestation and the reviewer's password again."""
    check_signature(db, case, password=password, attested=attested, by=by, ip=ip, now=now, what="addendum")
    follow_up = record_follow_up_answer(db, case, follow_up_id, answer=answer, by=by, ip=ip, now=now)
    # The answer is part of the opinion from now on: the one addendum mechanism, a new letter version.
    letter = add_addendum(db, storage, case, follow_up.answer, reason=follow_up.addendum_reason,
                          by=by, ip=ip, now=now, institution=institution)
    follow_up.addendum_id = letter.addendum_id
    notify(db, case.referring, kind="follow_up_answer", case=case, now=now,
           text=f"Your follow-up question {follow_up.number} on case {case.reference} has been answered.")
    return follow_up
