"""The multidisciplinary opinion across domains: the board panel of the case page, the tumor-board agenda
(cases awaiting consensus), and a section addendum that re-issues the letter as a new version."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from review_portal.assignment.models import Assignment, Review
from review_portal.audit.services import record_list_view
from review_portal.cases.lifecycle import CaseStatus
from review_portal.cases.models import Case
from review_portal.cases.permissions import is_reviewer_of, is_staff
from review_portal.letters.models import Letter
from review_portal.letters.services import issue_letter, latest_letter_of_opinion
from review_portal.notifications.services import notify
from review_portal.opinions.permissions import can_write_consensus
from review_portal.opinions.section_lifecycle import consensus_blockers
from review_portal.opinions.section_models import BoardChair, OpinionSection
from review_portal.opinions.sections import (
    SECTION_CASE_STATUSES,
    add_section_addendum,
    is_section_author,
    open_section_addenda,
    positions_of_case,
    sections_of_case,
)
from review_portal.opinions.services import chair_of, opinion_for_case
from review_portal.storage import Storage

AWAITING_CONSENSUS = (CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW, CaseStatus.AWAITING_INFORMATION)


def board_panel(db: Session, case, user) -> dict | None:
    """The case page's view of the sections, for the team (staff and the case's reviewers); None on a case
    with a single review (no board: no extra query on the common case page)."""
    if len(case.reviews) < 2 or not (is_staff(user) or is_reviewer_of(user, case)):
        return None
    sections = {s.review_id: s for s in sections_of_case(db, case.id)}
    positions = {p.section_id: p for p in positions_of_case(db, case.id)}
    chair = chair_of(db, case.id)
    opinion = opinion_for_case(db, case.id)
    open_case = case.status in SECTION_CASE_STATUSES
    rows = []
    for review in case.reviews:
        section = sections.get(review.id)
        rows.append({"review": review, "section": section,
                     "position": positions.get(section.id) if section is not None else None,
                     "is_author": is_section_author(user, review) and open_case,
                     "can_waive": is_staff(user) and open_case and review.status != "cancelled"
                     and (section is None or section.status == "draft")})
    return {"rows": rows, "chair": chair.chair if chair else (case.reviewer if case.lead_review else None),
            "chair_named": chair is not None, "opinion": opinion,
            "writer": can_write_consensus(user, case, chair) and not (opinion and opinion.is_signed),
            "can_name_chair": is_staff(user) and open_case and not (opinion and opinion.is_signed),
            "chair_choices": [(a.reviewer_id, a.reviewer.name) for a in case.assignments if a.is_taken],
            "blockers": consensus_blockers(case, list(sections.values()), list(positions.values()))
            if not (opinion and opinion.is_signed) else [],
            "open_addenda": open_section_addenda(db, case.id)}


@dataclass(frozen=True)
class AgendaRow:
    case: Case
    done: list[Review]
    missing: list[Review]
    chair_name: str
    sections: dict[int, OpinionSection]


def board_agenda(db: Session, user, *, page: int, per_page: int, ip: str, now: datetime) -> tuple[list[AgendaRow], int]:
    """Cases awaiting consensus that `user` may see, soonest due first: the agenda of a virtual tumor board."""
    multi = (select(Review.case_id).where(Review.status != "cancelled").group_by(Review.case_id)
             .having(func.count() > 1))
    query = select(Case).where(Case.status.in_([s.value for s in AWAITING_CONSENSUS]), Case.id.in_(multi))
    if not is_staff(user):
        held = select(Assignment.case_id).where(Assignment.reviewer_id == user.id, Assignment.active.is_(True))
        chaired = select(BoardChair.case_id).where(BoardChair.chair_id == user.id)
        query = query.where(or_(Case.id.in_(held), Case.id.in_(chaired)))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    cases = list(db.scalars(query.options(selectinload(Case.reviews).selectinload(Review.assignments))
                            .order_by(Case.due_at, Case.id).offset((page - 1) * per_page).limit(per_page)))
    if is_staff(user):
        # Staff see the working queue only (an archived case needs emergency access, never listed here).
        from review_portal.cases.permissions import can_view_case

        cases = [c for c in cases if can_view_case(user, c)]
    ids = [c.id for c in cases]
    sections = {s.review_id: s for s in db.scalars(select(OpinionSection).where(OpinionSection.case_id.in_(ids)))}
    chairs = {b.case_id: b for b in db.scalars(select(BoardChair).where(BoardChair.case_id.in_(ids)))}
    rows = []
    for case in cases:
        live = [r for r in case.reviews if r.status != "cancelled"]
        done = [r for r in live if r.id in sections and sections[r.id].is_done]
        missing = [r for r in live if r not in done and not (r.is_lead and r.id not in sections)]
        chair = chairs.get(case.id)
        lead = case.lead_review.reviewer if case.lead_review is not None else None
        chair_name = chair.chair.name if chair else (f"{lead.name} (lead reviewer)" if lead else "no lead reviewer yet")
        rows.append(AgendaRow(case, done, missing, chair_name, {r.id: sections[r.id] for r in live if r.id in sections}))
    if cases:
        record_list_view(db, cases, what="board.viewed", detail="tumor-board agenda", by=user, ip=ip, now=now)
    return rows, total


def sign_section_addendum(db: Session, storage: Storage, case, section: OpinionSection, text: str, *, reason: str,
                          password: str, attested: bool, by, ip: str, now: datetime, institution: dict) -> Letter | None:
    """A section's author amends the signed section. After the consensus this re-issues the letter as the next
    version (carrying the section addendum) and asks the chair for a consensus addendum; before it, the
    addendum simply joins the section. Returns the new letter, if one was issued."""
    addendum = add_section_addendum(db, case, section, text, reason=reason, password=password, attested=attested,
                                    by=by, ip=ip, now=now)
    opinion = opinion_for_case(db, case.id)
    if not addendum.after_consensus or opinion is None or latest_letter_of_opinion(db, opinion.id) is None:
        return None
    discipline = (section.discipline or section.kind).replace("_", " ").capitalize()
    summary = (f"{discipline} section addendum {addendum.number} of {now.day} {now:%B %Y}"
               + (f": {addendum.reason}" if addendum.reason else "")).rstrip(".") + "."
    letter = issue_letter(db, storage, case, opinion, institution=institution, by=by, ip=ip, now=now,
                          change_summary=summary)
    if opinion.reviewer is not None:
        notify(db, opinion.reviewer, kind="consensus_addendum", case=case, now=now,
               text=f"The {discipline.lower()} section of case {case.reference} was amended after the consensus. "
                    "Please add a consensus addendum.")
    return letter


def mark_section_addenda_answered(db: Session, case, now: datetime) -> None:
    """A consensus addendum answers the section addenda signed after the consensus."""
    for addendum in open_section_addenda(db, case.id):
        addendum.consensus_answered_at = now


def board_forms() -> dict:
    """The case page's board forms (each carries its CSRF token)."""
    from review_portal.opinions.section_forms import (
        ChairForm,
        PositionForm,
        SectionAddendumForm,
        WaiveSectionForm,
    )

    return {"addendum": SectionAddendumForm(), "waive": WaiveSectionForm(), "position": PositionForm(),
            "chair": ChairForm()}
