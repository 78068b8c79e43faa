"""Submitting a referral: open the case, take in its scans, route it to a reviewer.

One step across three domains (cases, imaging, assignment), shared by the referral form, the API
and the demo data.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from review_portal.auth.models import User
from review_portal.cases.models import Case
from review_portal.cases.questions import add_patient_questions, clean_patient_questions
from review_portal.cases.services import Referral, chosen_disciplines, open_case
from review_portal.imaging.services import IngestReport, ingest_scans
from review_portal.storage import Storage
from review_portal.uploads import UploadedFile
from review_portal.workflow.assignments import add_requested_reviews, route_case


def submit_referral(
    db: Session,
    storage: Storage,
    referral: Referral,
    *,
    documents: list[UploadedFile],
    scans: list[UploadedFile],
    by: User,
    ip: str,
    now: datetime,
    turnaround_days: dict[str, int],
    holidays: frozenset[date] = frozenset(),
) -> tuple[Case, IngestReport]:
    """Create the case with its history, documents and scans, then route it to a reviewer.

    The referral's first discipline is the lead review; each further one becomes a contributing review
    (due with the case) routed to its own reviewer.

    Returns (case, ingest_report). Wrong document types refuse the whole referral before anything
    is written; unreadable scan files are skipped and listed in the report, the rest kept.
    """
    clean_patient_questions(referral.patient_questions)  # refused before anything is written
    case = open_case(db, storage, referral, documents=documents, by=by, ip=ip, now=now,
                     turnaround_days=turnaround_days, holidays=holidays, scan_files=len(scans))
    add_patient_questions(db, case.id, referral.patient_questions)
    report = ingest_scans(db, storage, case, scans, by=by, ip=ip, now=now)
    route_case(db, case, by=by, ip=ip, now=now)
    further = chosen_disciplines(db, referral)[1:]
    if further:
        add_requested_reviews(db, case, further, by=by, ip=ip, now=now)
    db.flush()
    return case, report
