"""/api/v1 through the test client with real tokens: referrals with documents, status, letters, paging,
errors as JSON, and object-level access (a token never sees more than its owner)."""
from __future__ import annotations

import base64
import io
import uuid

from pypdf import PdfReader
from sqlalchemy import func, select

from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case
from tests.api.conftest import bearer, referral_json
from tests.imaging_helpers import synth_series


def _count(db, model):
    db.expire_all()
    return db.scalar(select(func.count(model.id)))


def test_create_a_referral_with_documents_then_read_its_status(client, db, users, make_token, storage):
    raw = make_token("referring", "write")
    r = client.post("/api/v1/referrals", json=referral_json(), headers=bearer(raw))
    assert r.status_code == 201, r.json
    body = r.json
    assert r.headers["Location"].endswith(f"/api/v1/referrals/{body['id']}")
    assert body["reference"].startswith("SO-") and body["status"] == "assigned" and body["fhir_status"] == "received"
    assert body["patient"] == {"name": "Ada Api", "birth_date": "1961-03-04", "sex": "female", "mrn": "EHR-77"}
    [doc] = body["documents"]
    assert doc["content_type"] == "application/pdf" and doc["filename"] == "pathology.pdf"
    assert storage.read_bytes(doc["sha256"]).startswith(b"%PDF-")

    case = db.get(Case, body["id"])
    assert case.referring_id == users["referring"].id and case.history[0].kind == "pathology"
    submitted = db.scalar(select(AuditEvent).where(AuditEvent.action == "case.submitted", AuditEvent.case_id == case.id))
    assert submitted.actor_id == users["referring"].id

    shown = client.get(f"/api/v1/referrals/{case.id}", headers=bearer(raw))
    assert shown.status_code == 200 and shown.json["status_label"] == "Assigned (offered)"
    assert shown.json["letters"] == [] and "letter" not in shown.json["links"]
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "case.viewed", AuditEvent.detail == "API"))


def test_bad_input_is_a_readable_4xx_and_writes_nothing(client, db, make_token):
    raw = make_token("referring", "write")
    before = _count(db, Case)
    cases = [
        (referral_json(documents=[{"filename": "x.pdf", "content_base64": "***"}]), 400, "not base64"),
        (referral_json(documents=[{"filename": "x.exe", "content_base64": base64.b64encode(b"MZ\x90\x00").decode()}]),
         400, "PDF files or images"),
        (referral_json(question="   "), 400, "question is required"),
        (referral_json(question="nul\x00byte"), 400, "control character (U+0000)"),
        (referral_json(patient={"name": "A", "birth_date": "2999-01-01", "sex": "female", "mrn": "1"}), 400, "future"),
        (referral_json(cancer_site="elbow", surprise=1), 400, "cancer_site must be one of"),
        ([1, 2, 3], 400, "must be an object"),
    ]
    for body, status, message in cases:
        r = client.post("/api/v1/referrals", json=body, headers=bearer(raw))
        assert r.status_code == status and message in r.json["error"], (body, r.json)
    assert "unknown fields: surprise" in client.post("/api/v1/referrals", json=referral_json(surprise=1),
                                                     headers=bearer(raw)).json["error"]
    r = client.post("/api/v1/referrals", data="{not json", headers=bearer(raw) | {"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["error"] == "The body is not valid JSON."
    r = client.post("/api/v1/referrals", data="a=b", headers=bearer(raw) | {"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert client.get("/api/v1/referrals?page=0", headers=bearer(raw)).status_code == 400
    assert client.get("/api/v1/referrals?status=lost", headers=bearer(raw)).status_code == 400
    assert client.get("/api/v1/referrals/99999999999999999999", headers=bearer(raw)).status_code == 404
    assert client.get(f"/api/v1/referrals/{2**31}", headers=bearer(raw)).status_code == 404
    assert _count(db, Case) == before


def test_lists_are_paginated_and_hold_only_the_owners_referrals(client, make_case, users, make_token):
    mine = [make_case("assigned") for _ in range(3)]
    make_case("assigned", by=users["other_referring"], cancer_site="gi")
    raw = make_token("referring", "read")
    first = client.get("/api/v1/referrals?per_page=2", headers=bearer(raw)).json
    assert first["total"] == 3 and len(first["items"]) == 2 and first["page"] == 1
    assert first["next"].endswith("/api/v1/referrals?page=2&per_page=2")
    second = client.get("/api/v1/referrals?page=2&per_page=2", headers=bearer(raw)).json
    assert len(second["items"]) == 1 and second["next"] is None
    assert sorted(i["id"] for i in first["items"] + second["items"]) == sorted(c.id for c in mine)
    assert client.get("/api/v1/referrals?status=closed", headers=bearer(raw)).json["total"] == 0


def test_a_token_sees_exactly_what_its_owner_sees(client, make_case, users, make_token):
    case = make_case("letter_delivered")
    paths = [f"/api/v1/referrals/{case.id}", f"/api/v1/referrals/{case.id}/letter",
             f"/api/v1/referrals/{case.id}/fhir/Task", f"/api/v1/referrals/{case.id}/fhir/DiagnosticReport"]
    for key in ("referring", "reviewer", "coordinator"):
        raw = make_token(key, "read")
        for path in paths:
            assert client.get(path, headers=bearer(raw)).status_code == 200, (key, path)
    for key in ("other_referring", "other_reviewer", "radiologist"):
        raw = make_token(key, "read")
        for path in paths:
            r = client.get(path, headers=bearer(raw))
            assert r.status_code == 404, (key, path, r.status_code)
        assert client.get("/api/v1/referrals", headers=bearer(raw)).json["total"] == 0
    # FHIR paths answer errors as OperationOutcome.
    r = client.get(paths[2], headers=bearer(make_token("other_referring", "read")))
    assert r.mimetype == "application/fhir+json" and r.json["issue"][0]["code"] == "not-found"
    # Only referring physicians submit.
    r = client.post("/api/v1/referrals", json=referral_json(), headers=bearer(make_token("reviewer", "write")))
    assert r.status_code == 403


def test_the_signed_letter_comes_as_a_pdf_and_its_download_is_audited(client, db, make_case, users, make_token):
    case = make_case("letter_delivered")
    raw = make_token("referring", "read")
    listed = client.get(f"/api/v1/referrals/{case.id}", headers=bearer(raw)).json
    assert [l["version"] for l in listed["letters"]] == [1] and listed["links"]["letter"]
    r = client.get(f"/api/v1/referrals/{case.id}/letter", headers=bearer(raw))
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(r.data)).pages)
    assert case.reference in text
    assert client.get(f"/api/v1/referrals/{case.id}/letter?version=1", headers=bearer(raw)).data == r.data
    assert client.get(f"/api/v1/referrals/{case.id}/letter?version=2", headers=bearer(raw)).status_code == 404
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "letter.downloaded", AuditEvent.case_id == case.id))
    assert event.actor_id == users["referring"].id
    fresh = make_case("assigned")
    r = client.get(f"/api/v1/referrals/{fresh.id}/letter", headers=bearer(raw))
    assert r.status_code == 404 and "No letter" in r.json["error"]


def _multipart(paths) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p.read_bytes() + b"\r\n"
                    for p in paths) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def test_push_studies_with_a_token_through_the_api_alias(client, make_case, make_token, tmp_path):
    case_id = make_case("assigned").id
    body, content_type = _multipart(synth_series(tmp_path / "s", 2))
    reader = make_token("referring", "read")
    r = client.post(f"/api/v1/referrals/{case_id}/studies", data=body, content_type=content_type,
                    headers=bearer(reader))
    assert r.status_code == 403
    writer = make_token("referring", "write")
    r = client.post(f"/api/v1/referrals/{case_id}/studies", data=body, content_type=content_type,
                    headers=bearer(writer))
    assert r.status_code == 200 and r.mimetype == "application/dicom+json"
    assert len(r.json["00081199"]["Value"]) == 2
    [study] = client.get(f"/api/v1/referrals/{case_id}", headers=bearer(writer)).json["studies"]
    assert study["instances"] == 2
    stranger = make_token("other_referring", "write")
    r = client.post(f"/api/v1/referrals/{case_id}/studies", data=body, content_type=content_type,
                    headers=bearer(stranger))
    assert r.status_code == 404
    r = client.post(f"/api/v1/referrals/{case_id}/studies", data=b"x", content_type="application/json",
                    headers=bearer(writer))
    assert r.status_code == 415 and "multipart/related" in r.json["error"]


def test_the_openapi_document_is_valid_public_and_describes_every_api_route(app, client):
    from openapi_spec_validator import validate

    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.json
    validate(doc)
    documented = {(("/api/v1" + path).replace("{case_id}", "<int:case_id>"), method.upper())
                  for path, item in doc["paths"].items() for method in item}
    served = {(rule.rule, method) for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served
