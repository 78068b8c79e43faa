"""Demo data for "Is this the same patient?": one referral whose study's header names another patient, left
unresolved (the referrer, Dr Roe, and the reviewer, Dr Stone, see the banner; signing waits). The other demo
scans (pydicom's test files, the synthetic CT) carry placeholder names: `confirm_demo_scans` records them as the
referral's patient, as a coordinator would."""
from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file

from review_portal.cases.services import HistoryItem, Referral
from review_portal.imaging.identity_services import (
    confirm_same_patient,
    open_mismatches,
)
from review_portal.uploads import UploadedFile
from review_portal.workflow.assignments import accept_offer
from review_portal.workflow.referrals import submit_referral


def confirm_demo_scans(db, case, *, by, now) -> None:
    for study_id in sorted({m.study_id for m in open_mismatches(db, case.id)}):
        confirm_same_patient(db, case, study_id, reason="Demo scan with a placeholder name (synthetic data)", by=by,
                             ip="127.0.0.1", now=now)


def seed_identity_mismatch(db, storage, *, referrer, now, ctx: dict):
    """A thoracic referral for "Iris Lowell" whose CT says HOLLOWAY^GEORGE, another ID, birth date and sex."""
    with tempfile.TemporaryDirectory() as work:
        ds = dcmread(get_testdata_file("CT_small.dcm", download=False))
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "HOLLOWAY^GEORGE", "EXT-4471", "19500812", "M"
        ds.StudyDescription = "CT chest (sent with the referral)"
        path = Path(work) / "ct_chest.dcm"
        ds.save_as(path)
        case, _ = submit_referral(db, storage, Referral(
            patient_name="Iris Lowell", patient_dob=date(1962, 3, 14), patient_sex="female", patient_mrn="RGH-100990",
            question="Is the right lower lobe mass resectable?", diagnosis_in_question="Right lower lobe NSCLC, cT2aN1.",
            plan_in_question="Lobectomy after neoadjuvant chemo-immunotherapy.", disciplines=("medical_oncology",),
            cancer_site="thoracic", priority="routine",
            history=[HistoryItem(date(2026, 10, 9), "imaging", "CT chest: 38 mm right lower lobe mass.")]),
            documents=[], scans=[UploadedFile("ct_chest.dcm", path)], by=referrer, now=now - timedelta(days=1), **ctx)
    accept_offer(db, case.active_assignment, by=case.reviewer, ip="127.0.0.1", now=now - timedelta(hours=20))
    return case
