"""The section's state machine, and the rule that gates the consensus.

    draft → signed          (by its author, with re-authentication; later changes are section addenda)
    draft → waived          (by a coordinator, with a reason: the consensus may go without it)

A section is created as a draft, or directly as waived (a coordinator waives a section nobody started), or as
recorded (free-text findings kept from before sections existed, or from the old "complete review" form: they
count as done but were never signed with re-authentication, and the letter says so). Signed, waived and
recorded are final: nothing signed is edited in place.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from review_portal.errors import IllegalTransition


class SectionStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    WAIVED = "waived"
    RECORDED = "recorded"


SECTION_STATUS_LABELS = {
    SectionStatus.DRAFT: "Draft",
    SectionStatus.SIGNED: "Signed",
    SectionStatus.WAIVED: "Waived",
    SectionStatus.RECORDED: "Findings recorded (not signed)",
}
CREATED_AS = frozenset({SectionStatus.DRAFT, SectionStatus.WAIVED, SectionStatus.RECORDED})
DONE_STATUSES = frozenset({SectionStatus.SIGNED, SectionStatus.WAIVED, SectionStatus.RECORDED})

SECTION_TRANSITIONS: dict[SectionStatus, frozenset[SectionStatus]] = {
    SectionStatus.DRAFT: frozenset({SectionStatus.SIGNED, SectionStatus.WAIVED}),
    SectionStatus.SIGNED: frozenset(),
    SectionStatus.WAIVED: frozenset(),
    SectionStatus.RECORDED: frozenset(),
}
SECTION_AUDIT_ACTIONS = {SectionStatus.SIGNED: "section.signed", SectionStatus.WAIVED: "section.waived"}
_VERBS = {SectionStatus.SIGNED: "signed", SectionStatus.WAIVED: "waived", SectionStatus.DRAFT: "made a draft again",
          SectionStatus.RECORDED: "recorded"}


def can_transition_section(current: str, target: str) -> bool:
    return SectionStatus(target) in SECTION_TRANSITIONS[SectionStatus(current)]


def transition_section(section, target: SectionStatus, now: datetime, *, by=None, ip: str = "", case=None,
                       detail: str = "") -> None:
    """Move `section` to `target` (IllegalTransition otherwise) and write the move's audit row."""
    current, target = SectionStatus(section.status), SectionStatus(target)
    if target not in SECTION_TRANSITIONS[current]:
        if current == SectionStatus.SIGNED:
            raise IllegalTransition("This section is signed; it can no longer be changed. Add a section addendum instead.")
        raise IllegalTransition(f"This section is {SECTION_STATUS_LABELS[current].lower()}; "
                                f"it can no longer be {_VERBS[target]}.")
    section.status = target.value
    section.updated_at = now
    if target in SECTION_AUDIT_ACTIONS:
        from review_portal.audit.moves import record_move

        record_move(section, action=SECTION_AUDIT_ACTIONS[target], by=by, ip=ip, now=now,
                    case=case if case is not None else section.review.case, object_type="section", detail=detail)


def consensus_blockers(case, sections, positions) -> list[str]:
    """What the consensus still waits for, in words naming each section: every contributing review's section
    signed or waived (a section someone started counts too, the lead's own included), and a position
    recorded for each signed contributor. A coordinator's release of the letter waives the sections still
    missing (it is audited with its reason)."""
    released = getattr(case, "letter_released_at", None) is not None
    by_review = {s.review_id: s for s in sections}
    missing = []
    for review in case.reviews:
        if review.status == "cancelled":
            continue
        section = by_review.get(review.id)
        if section is None and (review.is_lead or released):
            continue
        if section is not None and SectionStatus(section.status) in DONE_STATUSES:
            continue
        who = review.reviewer.name if review.reviewer else "no reviewer yet"
        state = "not started" if section is None else SECTION_STATUS_LABELS[SectionStatus(section.status)].lower()
        missing.append(f"{_discipline_label(review)} ({who}, {state})")
    problems = []
    if missing:
        problems.append("sections not yet signed or waived: " + "; ".join(missing))
    lead_review_ids = {r.id for r in case.reviews if r.is_lead}
    have = {p.section_id for p in positions}
    unplaced = [f"{_discipline_label(s.review)} ({s.author.name if s.author else 'unknown'})" for s in sections
                if s.status == SectionStatus.SIGNED and s.review_id not in lead_review_ids and s.id not in have]
    if unplaced:
        problems.append("no position recorded (agree or dissent) for: " + "; ".join(unplaced))
    return problems


def check_consensus_may_be_signed(case, sections, positions) -> None:
    problems = consensus_blockers(case, sections, positions)
    if problems:
        raise IllegalTransition(f"The consensus of case {case.reference} cannot be signed yet: " + ". ".join(problems)
                                + ". Each section is signed by its author or waived by a coordinator with a reason.")


def _discipline_label(review) -> str:
    if review.discipline:
        return review.discipline.replace("_", " ").capitalize()
    return review.review_type_label
