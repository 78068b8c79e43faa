"""The conversation around a case. Services flush and audit; the request boundary commits."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review_portal.deadlines import SlaPolicy
from review_portal.assignment.sla import pause_deadlines, resume_deadlines
from review_portal.audit.services import record
from review_portal.auth.models import Role
from review_portal.cases.lifecycle import CaseStatus, transition
from review_portal.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from review_portal.messaging import permissions
from review_portal.messaging.models import REQUEST_ITEMS, FollowUpQuestion, InformationRequest, Message
from review_portal.notifications.services import notify, notify_staff

MAX_TEXT = 8000


def _text(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"Write the {what}.")
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"The {what} is too long ({len(value)} characters; at most {MAX_TEXT}).")
    return value


def thread_for(db: Session, case_id: int) -> list[Message]:
    return list(db.scalars(select(Message).where(Message.case_id == case_id).order_by(Message.created_at, Message.id)))


def open_request(db: Session, case_id: int) -> InformationRequest | None:
    return db.scalar(select(InformationRequest).where(InformationRequest.case_id == case_id,
                                                      InformationRequest.status == "open"))


def requests_for(db: Session, case_id: int) -> list[InformationRequest]:
    return list(db.scalars(select(InformationRequest).where(InformationRequest.case_id == case_id)
                           .order_by(InformationRequest.id)))


def follow_ups_for(db: Session, case_id: int) -> list[FollowUpQuestion]:
    return list(db.scalars(select(FollowUpQuestion).where(FollowUpQuestion.case_id == case_id)
                           .order_by(FollowUpQuestion.number)))


def _others(case, author) -> list:
    """Everyone in the conversation except the author: the referrer and the reviewers holding the case."""
    people = {case.referring_id: case.referring}
    for a in case.assignments:
        if a.active and a.status in ("accepted", "completed", "offered"):
            people[a.reviewer_id] = a.reviewer
    people.pop(author.id, None)
    return list(people.values())


def post_message(db: Session, case, *, body: str, by, ip: str, now: datetime) -> Message:
    if not permissions.can_post_message(by, case):
        raise PermissionDenied("You cannot write on this case.")
    message = Message(case_id=case.id, author_id=by.id, kind="message", body=_text(body, "message"), created_at=now)
    db.add(message)
    db.flush()
    record(db, action="message.posted", by=by, ip=ip, now=now, case=case, object_type="message", object_id=message.id)
    for person in _others(case, by):
        notify(db, person, kind="message", case=case, now=now, text=f"New message from {by.name} on case {case.reference}.")
    if by.role != Role.COORDINATOR and case.reviewer is None:
        notify_staff(db, kind="message", case=case, now=now, text=f"New message on case {case.reference}, which has no reviewer.")
    return message


def request_information(db: Session, case, *, items: list[str], detail: str, by, ip: str, now: datetime) -> InformationRequest:
    """The reviewer asks the referrer for something specific; the case waits and the deadline clock stops."""
    if not permissions.can_request_information(by, case):
        if case.status == CaseStatus.AWAITING_INFORMATION:
            raise IllegalTransition(f"Case {case.reference} is already awaiting information.")
        raise PermissionDenied("Only a reviewer working on this case can request information while it is in review.")
    items = [i for i in dict.fromkeys(items or []) if i]
    unknown = [i for i in items if i not in REQUEST_ITEMS]
    if not items or unknown:
        raise InvalidInput("Tick what you need: " + ", ".join(REQUEST_ITEMS.values()).lower() + ".")
    detail = _text(detail, "request (what exactly you need and why)")
    request = InformationRequest(case_id=case.id, requested_by_id=by.id, items=items, detail=detail, status="open",
                                 requested_at=now)
    db.add(request)
    labels = "; ".join(REQUEST_ITEMS[i] for i in items)
    db.add(Message(case_id=case.id, author_id=by.id, kind="information_request", body=f"Requested: {labels}.\n{detail}",
                   created_at=now))
    transition(case, CaseStatus.AWAITING_INFORMATION, now, by=by, ip=ip, why=f"information requested: {labels}")
    pause_deadlines(case, now)
    db.flush()
    record(db, action="information.requested", by=by, ip=ip, now=now, case=case, object_type="information_request",
           object_id=request.id, detail=labels)
    notify(db, case.referring, kind="information_request", case=case, now=now,
           text=f"The reviewer of case {case.reference} needs more information before finishing the opinion.")
    return request


@dataclass(frozen=True)
class AnswerResult:
    request: InformationRequest
    documents: int
    scan_report: object | None


def answer_information_request(db: Session, storage, case, *, answer: str, documents=(), scans=(), policy: SlaPolicy,
                               by, ip: str, now: datetime) -> AnswerResult:
    """The referrer answers (text and/or reports and scans); the case resumes and the deadline moves by the hold."""
    from review_portal.cases.services import add_document, is_pdf
    from review_portal.imaging.services import ingest_scans

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
    request.status = "answered"
    request.answer = answer
    request.answered_at = now
    request.answered_by_id = by.id
    request.attachments_summary = summary
    db.add(Message(case_id=case.id, author_id=by.id, kind="information_answer",
                   body=(answer or "Attached what was asked for.") + (f"\n[{summary}]" if summary else ""), created_at=now))
    resume_deadlines(case, policy=policy, now=now)
    transition(case, CaseStatus.IN_REVIEW, now, by=by, ip=ip, why="requested information provided")
    db.flush()
    record(db, action="information.answered", by=by, ip=ip, now=now, case=case, object_type="information_request",
           object_id=request.id, detail=summary)
    notify(db, request.requested_by, kind="information_answer", case=case, now=now,
           text=f"The referring physician answered your request on case {case.reference}; the case is back in review.")
    return AnswerResult(request, len(documents), scan_report)


def ask_follow_up(db: Session, case, *, question: str, max_questions: int, by, ip: str, now: datetime) -> FollowUpQuestion:
    if not permissions.can_ask_follow_up(by, case):
        if case.referring_id == by.id:
            raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; follow-up questions can be "
                                    "asked once the letter is delivered and until the case is closed.")
        raise PermissionDenied("Only the referring physician can ask follow-up questions.")
    asked = db.scalar(select(func.count()).select_from(FollowUpQuestion).where(FollowUpQuestion.case_id == case.id)) or 0
    if asked >= max_questions:
        raise InvalidInput(f"All {max_questions} follow-up questions for this case have been asked.")
    follow_up = FollowUpQuestion(case_id=case.id, number=asked + 1, asked_by_id=by.id,
                                 question=_text(question, "question"), asked_at=now)
    db.add(follow_up)
    db.add(Message(case_id=case.id, author_id=by.id, kind="follow_up_question",
                   body=f"Follow-up question {asked + 1}: {follow_up.question}", created_at=now))
    db.flush()
    record(db, action="follow_up.asked", by=by, ip=ip, now=now, case=case, object_type="follow_up",
           object_id=follow_up.id)
    reviewer = case.reviewer
    if reviewer is not None:
        notify(db, reviewer, kind="follow_up", case=case, now=now,
               text=f"The referring physician asked a follow-up question on case {case.reference}.")
    else:
        notify_staff(db, kind="follow_up", case=case, now=now,
                     text=f"Follow-up question on case {case.reference}, which has no reviewer to answer it.")
    return follow_up


def answer_follow_up(db: Session, storage, case, follow_up_id: int, *, answer: str, institution: dict,
                     by, ip: str, now: datetime) -> FollowUpQuestion:
    """Store the reviewer's answer and add it to the opinion as a signed addendum, which re-issues the letter."""
    from review_portal.opinions.services import add_addendum

    if not permissions.can_answer_follow_up(by, case):
        raise PermissionDenied("Only the reviewer who signed the opinion answers follow-up questions.")
    follow_up = db.get(FollowUpQuestion, follow_up_id)
    if follow_up is None or follow_up.case_id != case.id:
        raise NotFound("No such follow-up question.")
    if follow_up.answered_at is not None:
        raise IllegalTransition("This question has already been answered.")
    follow_up.answer = _text(answer, "answer")
    follow_up.answered_at = now
    follow_up.answered_by_id = by.id
    db.add(Message(case_id=case.id, author_id=by.id, kind="follow_up_answer",
                   body=f"Answer to follow-up question {follow_up.number}: {follow_up.answer}", created_at=now))
    db.flush()
    record(db, action="follow_up.answered", by=by, ip=ip, now=now, case=case, object_type="follow_up",
           object_id=follow_up.id)
    # The answer is part of the opinion from now on: the one addendum mechanism, a new letter version.
    letter = add_addendum(db, storage, case, follow_up.answer,
                          reason=f"Answer to follow-up question {follow_up.number}: {follow_up.question}"[:300],
                          by=by, ip=ip, now=now, institution=institution)
    follow_up.addendum_id = letter.addendum_id
    notify(db, case.referring, kind="follow_up_answer", case=case, now=now,
           text=f"Your follow-up question {follow_up.number} on case {case.reference} has been answered.")
    return follow_up
