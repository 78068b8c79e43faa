"""The conversation around a case. Services flush and audit; the request boundary commits."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review_portal.assignment.lifecycle import HELD_ASSIGNMENT_STATUSES
from review_portal.assignment.sla import pause_deadlines
from review_portal.audit.services import record
from review_portal.auth.models import Role
from review_portal.cases.lifecycle import CaseStatus, transition
from review_portal.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from review_portal.messaging import permissions
from review_portal.messaging.lifecycle import RequestStatus
from review_portal.messaging.models import REQUEST_ITEMS, FollowUpQuestion, InformationRequest, Message
from review_portal.notifications.services import notify, notify_staff

MAX_TEXT = 8000


def clean_text(value: str, what: str) -> str:
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
                                                      InformationRequest.status == RequestStatus.OPEN.value))


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
        if a.active and a.status in HELD_ASSIGNMENT_STATUSES:
            people[a.reviewer_id] = a.reviewer
    people.pop(author.id, None)
    return list(people.values())


def post_message(db: Session, case, *, body: str, by, ip: str, now: datetime) -> Message:
    if not permissions.can_post_message(by, case):
        raise PermissionDenied("You cannot write on this case.")
    message = Message(case_id=case.id, author_id=by.id, kind="message", body=clean_text(body, "message"), created_at=now)
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
    detail = clean_text(detail, "request (what exactly you need and why)")
    request = InformationRequest(case_id=case.id, requested_by_id=by.id, items=items, detail=detail,
                                 status=RequestStatus.OPEN.value, requested_at=now)
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
                                 question=clean_text(question, "question"), asked_at=now)
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


def record_follow_up_answer(db: Session, case, follow_up_id: int, *, answer: str, by, ip: str,
                            now: datetime) -> FollowUpQuestion:
    """The reviewer's answer to a follow-up question, in the conversation; the addendum is the workflow's step."""
    if not permissions.can_answer_follow_up(by, case):
        raise PermissionDenied("Only the reviewer who signed the opinion answers follow-up questions.")
    follow_up = db.get(FollowUpQuestion, follow_up_id)
    if follow_up is None or follow_up.case_id != case.id:
        raise NotFound("No such follow-up question.")
    if follow_up.answered_at is not None:
        raise IllegalTransition("This question has already been answered.")
    follow_up.answer = clean_text(answer, "answer")
    follow_up.answered_at = now
    follow_up.answered_by_id = by.id
    db.add(Message(case_id=case.id, author_id=by.id, kind="follow_up_answer",
                   body=f"Answer to follow-up question {follow_up.number}: {follow_up.answer}", created_at=now))
    db.flush()
    record(db, action="follow_up.answered", by=by, ip=ip, now=now, case=case, object_type="follow_up",
           object_id=follow_up.id)
    return follow_up
