"""Completed cases at chosen times with chosen concordance, through the real services (letters rendered)."""
from __future__ import annotations

from datetime import timedelta

from review_portal.deadlines import policy_from_config
from review_portal.workflow.assignments import accept_offer
from review_portal.cases.services import close_case
from review_portal.workflow.referrals import submit_referral
from review_portal.letters.services import acknowledge_letter
from review_portal.workflow.conversations import answer_information_request
from review_portal.messaging.services import request_information
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.signing import sign_and_issue_letter
from tests.conftest import INSTITUTION, PASSWORD, TURNAROUND, referral


def completed_case(app, db, storage, users, *, submitted, signed, diagnosis="refined", plan="modify", radpeer="",
                   hold=None, by=None, close=True, **overrides):
    """A case submitted at `submitted`, its letter delivered at `signed`; `hold` = (asked, answered)."""
    by = by or users["referring"]
    if radpeer:
        overrides.setdefault("review_type", "radiology_read")
    case, _ = submit_referral(db, storage, referral(**overrides), documents=[], scans=[], by=by, ip="127.0.0.1",
                              now=submitted, turnaround_days=TURNAROUND)
    reviewer = case.reviewer
    accept_offer(db, case.active_assignment, by=reviewer, ip="127.0.0.1", now=submitted + timedelta(minutes=5))
    if hold:
        request_information(db, case, items=["records"], detail="Send the report.", by=reviewer, ip="127.0.0.1",
                            now=hold[0])
        answer_information_request(db, storage, case, answer="Attached.", policy=policy_from_config(app.config),
                                   by=by, ip="127.0.0.1", now=hold[1])
    if radpeer:
        draft = OpinionDraft(findings="Findings.", impression="Impression.", radpeer_score=radpeer,
                             radpeer_comment="Missed finding." if radpeer in ("2b", "3a", "3b") else "")
    else:
        draft = OpinionDraft(diagnosis, plan, "Reviewed diagnosis.", "Recommended plan.", "Rationale.")
    save_draft(db, case, draft, based_on_version=None, by=reviewer, ip="127.0.0.1", now=signed - timedelta(minutes=10))
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION, by=reviewer,
                          ip="127.0.0.1", now=signed)
    if close:
        acknowledge_letter(db, case, by=by, ip="127.0.0.1", now=signed + timedelta(hours=1))
        close_case(db, case, by=by, ip="127.0.0.1", now=signed + timedelta(hours=2))
    db.commit()
    return case
