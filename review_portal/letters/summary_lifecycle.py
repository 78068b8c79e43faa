"""The summary for the patient's state machine.

    draft → signed

A version is created as a draft (a new row, not a move). A signed version is never edited or unsigned:
a change is the next version, a new draft started from the signed text (letters.summary.start_summary).
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from review_portal.errors import IllegalTransition


class SummaryStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"


STATUS_LABELS = {SummaryStatus.DRAFT: "Draft", SummaryStatus.SIGNED: "Signed"}

TRANSITIONS: dict[SummaryStatus, frozenset[SummaryStatus]] = {
    SummaryStatus.DRAFT: frozenset({SummaryStatus.SIGNED}),
    # Signed is final: a change is a new version.
    SummaryStatus.SIGNED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return SummaryStatus(target) in TRANSITIONS[SummaryStatus(current)]


def transition(summary, target: SummaryStatus, now: datetime) -> None:
    """Move `summary` to `target`, or IllegalTransition with a message the lead understands."""
    current, target = SummaryStatus(summary.status), SummaryStatus(target)
    if target not in TRANSITIONS[current]:
        if current == SummaryStatus.SIGNED:
            raise IllegalTransition("This version of the summary is signed and cannot be changed. "
                                    "Start a new version instead.")
        raise IllegalTransition(f"This summary is {STATUS_LABELS[current].lower()}; "
                                f"it cannot be made {STATUS_LABELS[target].lower()}.")
    summary.status = target.value
    summary.updated_at = now
