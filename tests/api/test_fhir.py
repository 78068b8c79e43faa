"""FHIR R4: a Bundle in becomes a referral; after signing, the DiagnosticReport out validates against the
resource model and carries the letter; the Task follows the case; bad Bundles answer an OperationOutcome."""
from __future__ import annotations

import io

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.task import Task
from pypdf import PdfReader
from sqlalchemy import select

from review_portal.cases.models import Case
from review_portal.letters.models import Letter
from tests.api.conftest import bearer, fhir_bundle, small_pdf

FHIR = {"Content-Type": "application/fhir+json"}


def _post(client, raw, payload):
    import json

    return client.post("/api/v1/fhir/Bundle", data=json.dumps(payload), headers=bearer(raw) | FHIR)


def test_bundle_in_referral_made_signed_diagnostic_report_out_with_the_letter(client, db, storage, users, make_token,
                                                                             sign_case):
    raw = make_token("referring", "write")
    pdf = small_pdf("Biopsy 2026-10-01")
    r = _post(client, raw, fhir_bundle(pdf=pdf))
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.mimetype == "application/fhir+json"
    task = Task.model_validate(r.json)
    assert task.status == "received" and task.priority == "urgent"
    case_id = int(r.headers["Location"].rsplit("/", 1)[1])

    db.expire_all()
    case = db.get(Case, case_id)
    assert task.identifier[0].value == case.reference
    assert (case.patient_name, case.patient_mrn, case.patient_sex, case.patient_dob.isoformat()) == \
        ("Grace Fhirson", "FHIR-123", "female", "1958-07-09")
    assert case.cancer_site == "breast" and case.priority == "urgent"
    assert case.question == "Neoadjuvant chemotherapy or surgery first?"
    assert case.plan_in_question == "Surgery first, then adjuvant therapy."
    [doc] = case.documents
    assert storage.read_bytes(doc.sha256) == pdf and doc.filename == "Biopsy report.pdf"

    assert client.get(f"/api/v1/referrals/{case_id}/fhir/DiagnosticReport", headers=bearer(raw)).status_code == 404
    sign_case(case)

    r = client.get(f"/api/v1/referrals/{case_id}/fhir/DiagnosticReport", headers=bearer(raw))
    assert r.status_code == 200 and r.mimetype == "application/fhir+json"
    report = DiagnosticReport.model_validate(r.json)
    assert report.status == "final"
    letter = db.scalar(select(Letter).where(Letter.case_id == case_id))
    [form] = report.presentedForm
    assert form.contentType == "application/pdf" and form.data == storage.read_bytes(letter.blob_key)
    assert case.reference in "".join(p.extract_text() for p in PdfReader(io.BytesIO(form.data)).pages)
    assert "Refined: IDC, HER2-low." in report.conclusion

    task = Task.model_validate(client.get(f"/api/v1/referrals/{case_id}/fhir/Task", headers=bearer(raw)).json)
    assert task.status == "completed" and task.businessStatus.coding[0].code == "letter_delivered"
    assert task.output[0].valueReference.reference == f"DiagnosticReport/{report.id}"


@pytest.mark.parametrize("status,fhir_status", [("in_review", "in-progress"), ("awaiting_information", "on-hold"),
                                                ("withdrawn", "cancelled")])
def test_task_status_follows_the_case(client, make_case, make_token, status, fhir_status):
    case = make_case(status)
    r = client.get(f"/api/v1/referrals/{case.id}/fhir/Task", headers=bearer(make_token("referring", "read")))
    task = Task.model_validate(r.json)
    assert task.status == fhir_status and task.businessStatus.coding[0].code == status
    assert task.output is None


def _outcome(r, status):
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/fhir+json"
    return OperationOutcome.model_validate(r.json)


def test_bad_bundles_answer_an_operation_outcome_and_create_nothing(client, db, make_token):
    raw = make_token("referring", "write")
    before = db.scalar(select(Case.id).order_by(Case.id.desc()))

    structural = fhir_bundle()
    structural["entry"][0]["resource"]["birthDate"] = "1958-13-40"
    structural["entry"][1]["resource"]["colour"] = "blue"
    outcome = _outcome(_post(client, raw, structural), 400)
    where = {e for i in outcome.issue for e in (i.expression or [])}
    assert {"Bundle.entry[0].resource.birthDate", "Bundle.entry[1].resource.colour"} <= where

    outcome = _outcome(_post(client, raw, fhir_bundle(drop="ServiceRequest")), 422)
    assert "exactly one ServiceRequest" in outcome.issue[0].diagnostics
    assert "searchset" in _outcome(_post(client, raw, fhir_bundle() | {"type": "searchset"}), 422).issue[0].diagnostics

    by_url = fhir_bundle()
    by_url["entry"][2]["resource"]["content"][0]["attachment"] = {"contentType": "application/pdf",
                                                                  "url": "https://elsewhere.example/r.pdf"}
    assert "we do not fetch attachment.url" in _outcome(_post(client, raw, by_url), 422).issue[0].diagnostics

    gaps = fhir_bundle(site="elbow")
    sr = gaps["entry"][1]["resource"]
    del sr["note"], sr["extension"]
    sr["subject"] = {"reference": "Patient/someone-else"}
    where = {i.expression[0].rsplit(".", 1)[1] for i in _outcome(_post(client, raw, gaps), 422).issue}
    assert where == {"subject", "bodySite", "note", "extension"}  # every problem at once, each with its place

    not_pdf = fhir_bundle(pdf=b"MZ\x90\x00 an executable")
    assert "PDF files or images" in _outcome(_post(client, raw, not_pdf), 422).issue[0].diagnostics

    assert _outcome(client.post("/api/v1/fhir/Bundle", data="{", headers=bearer(raw) | FHIR), 400)
    assert _outcome(client.post("/api/v1/fhir/Bundle", data="x", headers=bearer(raw)), 415)
    assert _outcome(_post(client, raw, {"resourceType": "Patient"}), 400)
    # Errors from authentication answer the same way on FHIR paths.
    assert _outcome(client.post("/api/v1/fhir/Bundle", json=fhir_bundle()), 401)
    assert _outcome(_post(client, make_token("referring", "read"), fhir_bundle()), 403)
    assert _outcome(_post(client, make_token("reviewer", "write"), fhir_bundle()), 403)

    db.expire_all()
    assert db.scalar(select(Case.id).order_by(Case.id.desc())) == before
