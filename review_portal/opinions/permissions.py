"""Who may amend a signed opinion."""
from __future__ import annotations

from review_portal.cases.lifecycle import CaseStatus
from review_portal.cases.permissions import has_accepted_review, is_current_reviewer

# An addendum follows a delivered letter; the new version is delivered again (see letters.services.issue_letter).
ADDENDUM_STATUSES = frozenset({CaseStatus.OPINION_SIGNED, CaseStatus.LETTER_DELIVERED, CaseStatus.ACKNOWLEDGED,
                               CaseStatus.CLOSED})


def can_add_addendum(user, case, opinion) -> bool:
    # The signer: the lead reviewer, or a chair named for a multidisciplinary case (who holds a review of it).
    return (opinion is not None and opinion.is_signed and opinion.reviewer_id == user.id
            and (is_current_reviewer(user, case) or has_accepted_review(user, case))
            and case.status in ADDENDUM_STATUSES)


def can_write_consensus(user, case, chair=None) -> bool:
    """The consensus (the case's opinion) is written by the lead reviewer at work, or by the chair a coordinator
    named, who must have accepted a review of this case (the same access any reviewer has)."""
    from review_portal.cases.permissions import can_file_opinion

    if chair is None:
        return can_file_opinion(user, case)
    return (chair.chair_id == user.id and has_accepted_review(user, case)
            and case.status in (CaseStatus.IN_REVIEW, CaseStatus.AWAITING_INFORMATION))
