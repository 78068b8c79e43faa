"""API fixtures: tokens made through the real service, a small real PDF, a FHIR intake Bundle, and signing."""
from __future__ import annotations

import base64
import io
from datetime import timedelta

import pytest

from review_portal.api.fhir import EXT_PLAN_IN_QUESTION, SYSTEM_CANCER_SITE, SYSTEM_DISCIPLINE, SYSTEM_REVIEW_TYPE
from review_portal.api.services import create_token
from review_portal.clock import utcnow
from tests.conftest import INSTITUTION, PASSWORD


def bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def make_token(db, users):
    """A live token for the user with role key `key` (created `age` ago, lasting `days`). Returns the plaintext."""
    from review_portal.auth.models import User

    ids = {key: user.id for key, user in users.items()}  # requests in between may detach the fixture's objects

    def _make(key: str = "referring", scope: str = "write", *, days: int = 30, age: timedelta = timedelta(0)):
        _row, raw = create_token(db, name=f"{key} system", scope=scope, days=days, by=db.get(User, ids[key]),
                                 ip="10.0.0.1", now=utcnow() - age)
        db.commit()
        return raw
    return _make


def small_pdf(text: str = "Pathology report") -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": text})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def referral_json(**overrides) -> dict:
    body = {
        "patient": {"name": "Ada Api", "birth_date": "1961-03-04", "sex": "female", "mrn": "EHR-77"},
        "question": "Is adjuvant chemotherapy needed?", "diagnosis_in_question": "Breast carcinoma pT1cN0.",
        "plan_in_question": "Endocrine therapy alone.", "disciplines": ["medical_oncology"], "cancer_site": "breast",
        "priority": "routine",
        "history": [{"occurred_on": "2026-10-01", "kind": "pathology", "text": "Core biopsy: IDC grade 2."}],
        "documents": [{"filename": "pathology.pdf", "content_base64": base64.b64encode(small_pdf()).decode()}],
    }
    body.update(overrides)
    return body


def fhir_bundle(*, pdf: bytes | None = None, site: str = "breast", drop: str | None = None) -> dict:
    pdf = small_pdf() if pdf is None else pdf
    entries = [
        {"fullUrl": "urn:uuid:7f0e5a4c-0000-4000-8000-000000000001", "resource": {
            "resourceType": "Patient",
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "MR"}]}, "system": "urn:oid:1.2.3.4", "value": "FHIR-123"}],
            "name": [{"family": "Fhirson", "given": ["Grace"]}], "gender": "female", "birthDate": "1958-07-09"},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:7f0e5a4c-0000-4000-8000-000000000002", "resource": {
            "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "urgent",
            "subject": {"reference": "urn:uuid:7f0e5a4c-0000-4000-8000-000000000001"},
            "code": {"coding": [{"system": SYSTEM_REVIEW_TYPE, "code": "oncology_opinion"},
                                {"system": SYSTEM_DISCIPLINE, "code": "medical_oncology"}]},
            "bodySite": [{"coding": [{"system": SYSTEM_CANCER_SITE, "code": site}]}],
            "reasonCode": [{"text": "Invasive ductal carcinoma, cT2N1."}],
            "note": [{"text": "Neoadjuvant chemotherapy or surgery first?"}],
            "extension": [{"url": EXT_PLAN_IN_QUESTION, "valueString": "Surgery first, then adjuvant therapy."}]},
         "request": {"method": "POST", "url": "ServiceRequest"}},
        {"fullUrl": "urn:uuid:7f0e5a4c-0000-4000-8000-000000000003", "resource": {
            "resourceType": "DocumentReference", "status": "current",
            "subject": {"reference": "urn:uuid:7f0e5a4c-0000-4000-8000-000000000001"},
            "content": [{"attachment": {"contentType": "application/pdf", "title": "Biopsy report",
                                        "data": base64.b64encode(pdf).decode()}}]},
         "request": {"method": "POST", "url": "DocumentReference"}},
    ]
    if drop:
        entries = [e for e in entries if e["resource"]["resourceType"] != drop]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@pytest.fixture
def sign_case(db, storage):
    """Drive a freshly routed case through acceptance, draft and signature (the letter is issued)."""
    from review_portal.workflow.assignments import accept_offer
    from review_portal.opinions.services import OpinionDraft, save_draft
    from review_portal.workflow.signing import sign_and_issue_letter

    def _sign(case):
        reviewer = case.reviewer
        now = utcnow()
        ctx = {"ip": "127.0.0.1"}
        accept_offer(db, case.active_assignment, by=reviewer, now=now, **ctx)
        save_draft(db, case, OpinionDraft("refined", "modify", "Refined: IDC, HER2-low.", "Neoadjuvant first.",
                                          "Nodal disease on imaging.", "HER2 ISH."),
                   based_on_version=None, by=reviewer, now=now, **ctx)
        sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                              by=reviewer, now=now, **ctx)
        db.commit()
        return case
    return _sign
