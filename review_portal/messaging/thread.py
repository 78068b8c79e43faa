"""The case's one conversation: every message, request, answer and follow-up in the order they happened.

Each entry carries its kind and the label the page shows, and, for a request for information or a follow-up
question, the row it opened (so the answer form can sit at the entry it answers).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from review_portal.messaging.models import FollowUpQuestion, InformationRequest, Message
from review_portal.messaging.services import follow_ups_for, requests_for, thread_for

KIND_LABELS = {
    "message": "Message",
    "information_request": "Request for information",
    "information_answer": "Answer",
    "follow_up_question": "Follow-up question",
    "follow_up_answer": "Answer to follow-up — signed addendum",
}


@dataclass(frozen=True)
class ThreadEntry:
    message: Message
    request: InformationRequest | None = None
    follow_up: FollowUpQuestion | None = None

    @property
    def kind(self) -> str:
        return self.message.kind

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.message.kind, "Message")


def conversation_for(db: Session, case_id: int, *, requests: list[InformationRequest] | None = None,
                     follow_ups: list[FollowUpQuestion] | None = None) -> list[ThreadEntry]:
    """The thread, oldest first. The n-th request message belongs to the n-th request, and the n-th follow-up
    question message to follow-up question number n: both are written together by messaging.services.
    A page that already loaded the requests and follow-ups passes them (no second query)."""
    requests = iter(requests if requests is not None else requests_for(db, case_id))
    follow_ups = {q.number: q for q in (follow_ups if follow_ups is not None else follow_ups_for(db, case_id))}
    asked = 0
    entries = []
    for message in thread_for(db, case_id):
        if message.kind == "information_request":
            entries.append(ThreadEntry(message, request=next(requests, None)))
        elif message.kind == "follow_up_question":
            asked += 1
            entries.append(ThreadEntry(message, follow_up=follow_ups.get(asked)))
        else:
            entries.append(ThreadEntry(message))
    return entries
