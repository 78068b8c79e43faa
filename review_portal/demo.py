"""Synthetic demo data: institutions, one account per role (and more), cases in every state.

Scans are pydicom's bundled public test files, plus a synthetic CT series built from one of
them (new UIDs and positions per slice), so no download and no real patient data are needed.
"""
from __future__ import annotations

import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import select

from review_portal.assignment.models import OutOfOffice, ReviewerProfile
from review_portal.assignment.sla import sla_check
from review_portal.auth.models import Institution, Role, User
from review_portal.auth.services import create_user
from review_portal.cases.disciplines import seed_disciplines
from review_portal.cases.services import HistoryItem, Referral, close_case
from review_portal.clock import utcnow
from review_portal.deadlines import add_business_seconds, policy_from_config
from review_portal.demo_boards import seed_boards
from review_portal.demo_identity import confirm_demo_scans, seed_identity_mismatch
from review_portal.messaging.services import post_message, request_information
from review_portal.uploads import UploadedFile
from review_portal.workflow.assignments import accept_offer, add_review
from review_portal.workflow.referrals import submit_referral

DEMO_PASSWORD = "demo-password-2026"  # nosec B105 - public demo password, printed in the README
# Demo only (seed-demo is refused in production): every demo reviewer, coordinator and admin shares it.
# A public value printed in the README, hence the bandit exemption.
DEMO_TOTP_SECRET = "DEMOSECRETDEMOSECRETDEMOSECRET22"  # nosec B105


class DemoRefused(Exception):
    pass


def _ct_template() -> str:
    """A real 512x512 CT slice from pydicom-data when installed (it is in requirements), else pydicom's 128x128 one."""
    return get_testdata_file("693_UNCR.dcm", download=False) or get_testdata_file("CT_small.dcm", download=False)


def synthetic_ct_series(dest: Path, slices: int = 24, source: str | None = None) -> list[Path]:
    """Copies of a real CT slice forming one series: shared study/series/frame UIDs, new positions."""
    source_path = get_testdata_file(source, download=False) if source else _ct_template()
    template = dcmread(source_path)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(7)
    base = template.pixel_array.astype(np.int32)
    bits, signed = int(template.BitsStored), int(template.PixelRepresentation) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    x, y = (list(template.ImagePositionPatient)[:2] if "ImagePositionPatient" in template else [-158.1, -179.0])
    paths = []
    for n in range(slices):
        ds = dcmread(source_path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        z = -100.0 + n * 5.0
        ds.ImagePositionPatient = [x, y, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.SeriesDescription = "Axial 5 mm, synthetic series"
        ds.StudyDescription = "CT head (synthetic demo study)"
        ds.SeriesNumber = 2
        ds.PatientName = "DEMO^SYNTHETIC"
        ds.PatientID = "DEMO-0001"
        # Vary the pixels so every slice is distinct (no flattering of caches or compression).
        noise = rng.integers(-20, 21, size=base.shape)
        shift = int(40 * np.sin(n / 4))
        pixels = np.clip(base + noise + shift, low, high).astype(template.pixel_array.dtype)
        ds.PixelData = pixels.tobytes()
        path = dest / f"ct_{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _pdf_report(dest: Path, title: str, body: str) -> Path:
    from weasyprint import HTML

    path = dest / f"{title.lower().replace(' ', '_')}.pdf"
    from markupsafe import escape

    HTML(string=f"<h1>{escape(title)}</h1><p>{escape(body)}</p><p><em>Synthetic demonstration document.</em></p>").write_pdf(path)
    return path


def _set_due(case, due) -> None:
    case.lead_review.due_at = due
    case.due_at = due


def seed(app, db) -> bool:
    if not app.config.get("DEMO_DATA_ALLOWED") or app.config.get("PRODUCTION"):
        raise DemoRefused("Demo data is refused on a production configuration.")
    if db.scalar(select(User).limit(1)) is not None:
        return False
    now = utcnow()
    storage = app.extensions["storage"]
    seed_disciplines(db)  # the migration has them already; a schema made from the models does not

    northbridge = Institution(name="Northbridge Cancer Centre", address="1 Harbour Road\nNorthbridge NB1 2CC")
    riverside = Institution(name="Riverside General Hospital", address="Oncology Department\n40 River Street\nRiverside RV3 9AA")
    lakeside = Institution(name="Lakeside Oncology Clinic", address="12 Lake View\nLakeside LK5 1BB")
    harbourside = Institution(name="Harbourside University Hospital", address="Cancer Centre\n2 Quay Street\nHarbourside HB4 7QQ")
    db.add_all([northbridge, riverside, lakeside, harbourside])
    db.flush()

    def user(email, name, role, inst, **kw):
        u = create_user(db, email=email, name=name, password=DEMO_PASSWORD, role=role, now=now, institution=inst, **kw)
        if u.mfa_required:
            # Pre-enrolled so a newcomer can log in: the shared demo secret is printed in the README.
            u.totp_secret, u.totp_enabled_at = DEMO_TOTP_SECRET, now
        return u

    roe = user("referrer@demo.example", "Dr Jane Roe", Role.REFERRING, riverside, credentials="MD")
    khan = user("khan@demo.example", "Dr Imran Khan", Role.REFERRING, lakeside, credentials="MD")
    stone = user("reviewer@demo.example", "Dr Ada Stone", Role.REVIEWER, northbridge, credentials="MD, PhD",
                 specialty="medical_oncology", sites=["breast", "thoracic", "gi"])
    okafor = user("radiologist@demo.example", "Dr Tomas Okafor", Role.REVIEWER, northbridge, credentials="MD, FRCR",
                  specialty="radiology", sites=["breast", "thoracic", "gi", "gu", "gynecologic", "head_neck", "neuro", "sarcoma"])
    lindqvist = user("lindqvist@demo.example", "Dr Maria Lindqvist", Role.REVIEWER, northbridge, credentials="MD",
                     specialty="radiation_oncology", sites=["head_neck", "neuro", "breast"])
    # Same institution as Dr Roe: must never be routed Dr Roe's cases.
    brandt = user("riverside.onc@demo.example", "Dr Paul Brandt", Role.REVIEWER, riverside, credentials="MD",
                  specialty="medical_oncology", sites=["breast", "thoracic", "gi"])
    # Cover the sites the first reviewers do not, so the history spans the specialties.
    natarajan = user("natarajan@demo.example", "Dr Priya Natarajan", Role.REVIEWER, northbridge, credentials="MD",
                     specialty="medical_oncology", sites=["gu", "gynecologic", "hematologic", "skin", "sarcoma"])
    ortega = user("ortega@demo.example", "Dr Luis Ortega", Role.REVIEWER, northbridge, credentials="MD, FACS",
                  specialty="surgical_oncology", sites=["gu", "gynecologic", "skin", "sarcoma"])
    chen = user("chen@demo.example", "Dr Mei Chen", Role.REFERRING, harbourside, credentials="MD")
    coordinator = user("coordinator@demo.example", "Sam Carter", Role.COORDINATOR, northbridge)
    user("admin@demo.example", "Alex Admin", Role.ADMIN, northbridge)
    db.add_all([
        ReviewerProfile(user_id=stone.id, capacity=10),
        ReviewerProfile(user_id=okafor.id, reading_areas=["neuro", "body", "chest", "msk", "breast"], capacity=12),
        ReviewerProfile(user_id=lindqvist.id, capacity=6),
        ReviewerProfile(user_id=brandt.id, capacity=4),
        ReviewerProfile(user_id=natarajan.id, capacity=8),
        ReviewerProfile(user_id=ortega.id, capacity=6),
        # Planned leave, shown on her availability page; routing skips her for cases due during it.
        OutOfOffice(user_id=lindqvist.id, starts_on=(now + timedelta(days=21)).date(),
                    ends_on=(now + timedelta(days=35)).date(), note="Annual leave"),
    ])
    db.flush()

    work = Path(tempfile.mkdtemp())
    try:
        ct = [UploadedFile(p.name, p) for p in synthetic_ct_series(work)]
        mr = [UploadedFile("MR_small.dcm", Path(get_testdata_file("MR_small.dcm", download=False)))]
        path_report = _pdf_report(work, "Pathology report", "Core biopsy, left breast: invasive carcinoma, NST, grade 2. ER positive, HER2 equivocal (IHC 2+).")
        ct_report = _pdf_report(work, "CT report", "CT chest: 14 mm spiculated nodule, right upper lobe. No mediastinal adenopathy.")
        policy = policy_from_config(app.config)
        ctx = {"ip": "127.0.0.1", "turnaround_days": app.config["TURNAROUND_DAYS"], "holidays": policy.holidays}

        # Sixty-odd completed cases over the past months, for the figures dashboard (see demo_archive).
        from review_portal.demo_archive import seed_archive

        seed_archive(app, db, storage, referrers=[roe, khan, chen], now=now, policy=policy)

        def referral(name, dob, sex, mrn, site, discipline="medical_oncology", priority="routine", **text):
            return Referral(
                patient_name=name, patient_dob=dob, patient_sex=sex, patient_mrn=mrn,
                question=text.get("question", "Do you agree with the diagnosis and the proposed plan?"),
                diagnosis_in_question=text.get("diagnosis", "See history."),
                plan_in_question=text.get("plan", "See history."),
                disciplines=(discipline,), cancer_site=site, priority=priority,
                history=text.get("history", []),
            )

        lung = referral(
            "Alice Demo", date(1958, 4, 2), "female", "RGH-100231", "thoracic", priority="urgent",
            question="Is this stage IA adenocarcinoma, and is lobectomy alone adequate?",
            diagnosis="Right upper lobe adenocarcinoma, cT1bN0M0 (stage IA2).",
            plan="Right upper lobectomy with mediastinal lymph node dissection; no adjuvant therapy.",
            history=[HistoryItem(date(2026, 9, 14), "imaging", "CT chest: 14 mm spiculated RUL nodule."),
                     HistoryItem(date(2026, 10, 2), "pathology", "CT-guided biopsy: adenocarcinoma, acinar predominant."),
                     HistoryItem(date(2026, 10, 20), "diagnosis", "MDT: stage IA2, surgical candidate.")],
        )
        lung_case, _ = submit_referral(db, storage, lung, documents=[UploadedFile("CT report.pdf", ct_report)],
                                       scans=ct + mr, by=roe, now=now - timedelta(days=2), **ctx)
        confirm_demo_scans(db, lung_case, by=coordinator, now=now - timedelta(days=2))
        accept_offer(db, lung_case.active_assignment, by=lung_case.reviewer, ip="127.0.0.1", now=now - timedelta(days=2))
        # Due in a few business hours, whatever weekday the demo is loaded on: the dashboard's "due soon" row.
        _set_due(lung_case, add_business_seconds(now, 5 * 3600, policy.holidays))
        # A radiology re-read alongside the oncology opinion: the letter waits for both.
        add_review(db, lung_case, "radiology_read", policy=policy, by=coordinator, ip="127.0.0.1", now=now - timedelta(days=1))

        breast = referral(
            "Beatrice Sample", date(1971, 11, 23), "female", "RGH-100877", "breast",
            question="HER2 equivocal: should she receive anti-HER2 therapy?",
            diagnosis="Invasive breast carcinoma NST, grade 2, ER+, HER2 2+ (equivocal), cT2N0.",
            plan="Neoadjuvant chemotherapy without anti-HER2 therapy, then surgery.",
            history=[HistoryItem(date(2026, 10, 5), "pathology", "Core biopsy: IDC grade 2, ER 90%, PR 40%, HER2 IHC 2+.")],
        )
        case_signed, _ = submit_referral(db, storage, breast, documents=[UploadedFile("Pathology report.pdf", path_report)],
                                         scans=[mr[0]], by=roe, now=now - timedelta(days=6), **ctx)
        confirm_demo_scans(db, case_signed, by=coordinator, now=now - timedelta(days=6))

        from review_portal.letters.services import acknowledge_letter
        from review_portal.opinions.services import OpinionDraft, save_draft
        from review_portal.workflow.signing import sign_and_issue_letter

        reviewer = case_signed.reviewer
        accept_offer(db, case_signed.active_assignment, by=reviewer, ip="127.0.0.1", now=now - timedelta(days=5))
        save_draft(db, case_signed, OpinionDraft(
            diagnosis_concordance="refined", plan_concordance="modify",
            reviewer_diagnosis="Invasive carcinoma NST, grade 2, ER+/PR+; HER2 status needs ISH before a plan is fixed.",
            recommended_plan="Reflex HER2 ISH. If amplified: neoadjuvant chemotherapy with trastuzumab and pertuzumab. If not: proceed as planned.",
            rationale="IHC 2+ is equivocal by ASCO/CAP guidance and must be resolved by ISH; the choice of systemic therapy depends on it.",
            further_tests="HER2 in situ hybridisation on the core biopsy.",
        ), based_on_version=None, by=reviewer, ip="127.0.0.1", now=now - timedelta(days=3))
        sign_and_issue_letter(db, storage, case_signed, password=DEMO_PASSWORD, attested=True,
                              institution=app.config["INSTITUTION"], by=reviewer, ip="127.0.0.1", now=now - timedelta(days=2))

        closed_case, _ = submit_referral(db, storage, referral(
            "Carl Example", date(1949, 2, 17), "male", "RGH-099120", "gi",
            question="Is neoadjuvant chemoradiotherapy indicated?",
            diagnosis="Rectal adenocarcinoma, cT3N1M0.", plan="Short-course radiotherapy then surgery.",
            history=[HistoryItem(date(2026, 8, 30), "diagnosis", "Colonoscopy and biopsy: adenocarcinoma at 8 cm.")]),
            documents=[], scans=[ct[0]], by=roe, now=now - timedelta(days=20), **ctx)
        confirm_demo_scans(db, closed_case, by=coordinator, now=now - timedelta(days=20))
        accept_offer(db, closed_case.active_assignment, by=closed_case.reviewer, ip="127.0.0.1", now=now - timedelta(days=19))
        save_draft(db, closed_case, OpinionDraft(
            diagnosis_concordance="confirmed", plan_concordance="agree",
            reviewer_diagnosis="Rectal adenocarcinoma, cT3N1M0.", recommended_plan="Proceed with the proposed plan.",
            rationale="Staging and plan are consistent with current guidance."),
            based_on_version=None, by=closed_case.reviewer, ip="127.0.0.1", now=now - timedelta(days=17))
        sign_and_issue_letter(db, storage, closed_case, password=DEMO_PASSWORD, attested=True,
                              institution=app.config["INSTITUTION"], by=closed_case.reviewer, ip="127.0.0.1",
                              now=now - timedelta(days=16))
        acknowledge_letter(db, closed_case, by=roe, ip="127.0.0.1", now=now - timedelta(days=15))
        close_case(db, closed_case, by=roe, ip="127.0.0.1", now=now - timedelta(days=14))

        # Radiology read for the other referrer, and a case nobody covers (lands in the coordinator's triage).
        dora, _ = submit_referral(db, storage, referral(
            "Dora Placeholder", date(1966, 6, 9), "female", "LOC-5521", "neuro", discipline="radiology",
            question="Is this progression or pseudo-progression?", diagnosis="Glioblastoma, post chemoradiation.",
            plan="Switch to second-line therapy.",
            history=[HistoryItem(date(2026, 11, 1), "imaging", "MR brain: new enhancement at the resection margin.")]),
            documents=[], scans=mr, by=khan, now=now - timedelta(days=1), **ctx)
        confirm_demo_scans(db, dora, by=coordinator, now=now - timedelta(days=1))
        seed_identity_mismatch(db, storage, referrer=roe, now=now, ctx=ctx)  # the one left unresolved
        submit_referral(db, storage, referral(
            "Evan Testcase", date(2015, 3, 3), "male", "LOC-7730", "pediatric",
            question="Second opinion on risk stratification.", diagnosis="Medulloblastoma, standard risk.",
            plan="Craniospinal irradiation and chemotherapy."), documents=[], scans=[], by=khan, now=now, **ctx)

        # Overdue: accepted twelve days ago and still open.
        overdue, _ = submit_referral(db, storage, referral(
            "Frank Overdue", date(1955, 8, 19), "male", "RGH-101002", "gi",
            question="Is adjuvant chemotherapy indicated after resection?", diagnosis="Colon adenocarcinoma, pT3N1a.",
            plan="Observation only."), documents=[], scans=[], by=roe, now=now - timedelta(days=12), **ctx)
        accept_offer(db, overdue.active_assignment, by=overdue.reviewer, ip="127.0.0.1", now=now - timedelta(days=11))

        # On time, in review.
        on_time, _ = submit_referral(db, storage, referral(
            "Hana Ontime", date(1980, 1, 30), "female", "LOC-6610", "head_neck", discipline="radiation_oncology",
            question="Is re-irradiation reasonable?", diagnosis="Recurrent oropharyngeal SCC, p16+.",
            plan="Palliative systemic therapy."), documents=[], scans=[], by=khan, now=now - timedelta(hours=3), **ctx)
        accept_offer(db, on_time.active_assignment, by=on_time.reviewer, ip="127.0.0.1", now=now - timedelta(hours=2))

        # Awaiting information: the reviewer asked for the slides; the deadline is paused.
        waiting, _ = submit_referral(db, storage, referral(
            "Grace Hold", date(1968, 5, 4), "female", "LOC-6655", "breast",
            question="Is this lobular or ductal, and does it change surgery?", diagnosis="Invasive carcinoma, type unclear.",
            plan="Breast-conserving surgery."), documents=[], scans=[], by=khan, now=now - timedelta(days=2), **ctx)
        accept_offer(db, waiting.active_assignment, by=waiting.reviewer, ip="127.0.0.1", now=now - timedelta(days=2))
        request_information(db, waiting, items=["pathology_slides"], detail="Please send the core biopsy slides and "
                            "the E-cadherin stain, if done.", by=waiting.reviewer, ip="127.0.0.1", now=now - timedelta(days=1))
        post_message(db, waiting, body="Slides are with the courier; E-cadherin was not done.", by=khan, ip="127.0.0.1",
                     now=now - timedelta(hours=20))

        seed_boards(app, db, storage, referrer=roe, scans=[mr[0]], now=now, ctx=ctx, password=DEMO_PASSWORD)  # tumor boards
        # An issued letter with a signed summary for the patient (Dr Roe refers; Dr Stone leads: see README).
        from review_portal.demo_summary import seed_patient_summary

        seed_patient_summary(app, db, storage, referrer=roe, password=DEMO_PASSWORD, now=now, ctx=ctx)

        # What cron would have raised by now: the escalation list on the dashboard.
        sla_check(db, policy=policy, now=now, ip="127.0.0.1")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return True
