"""The OpenAPI 3 description of /api/v1, written by hand next to the views it describes.

Enumerations come from the same tables the views validate against, and tests/api/test_schemathesis.py
checks the running API against this document (status codes, content types and response bodies).
"""
from __future__ import annotations

from review_portal.api.fhir import EXT_PLAN_IN_QUESTION, SYSTEM_CANCER_SITE, SYSTEM_REVIEW_TYPE
from review_portal.api.models import SCOPES
from review_portal.cases.lifecycle import STATUS_LABELS
from review_portal.cases.models import CANCER_SITES, HISTORY_KINDS, PRIORITIES, REVIEW_TYPES, SEXES
from review_portal.workflow.queries import SEARCH_MAX, SORTS

MAX_ID = 2**31 - 1
MAX_PAGE = 100_000
MAX_PER_PAGE = 100
MAX_DOCUMENTS = 20
TASK_STATUSES = ["draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress",
                 "on-hold", "failed", "completed", "entered-in-error"]

_ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731


def _text(max_length: int, description: str = "") -> dict:
    schema = {"type": "string", "minLength": 1, "maxLength": max_length}
    if description:
        schema["description"] = description
    return schema


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _outcome(description: str) -> dict:
    return {"description": description, "content": {"application/fhir+json": {"schema": _ref("OperationOutcome")}}}


_E = {
    "400": _error("The request is not valid; `error` says what to change."),
    "401": _error("No API token, or one that is unknown, expired or revoked. Browser sessions are not accepted."),
    "403": _error("The token's scope or its owner's role does not allow this."),
    "404": _error("No such referral, or not one the token's owner may see."),
    "413": _error("The request body is larger than the upload limit."),
    "415": _error("Wrong Content-Type."),
}
_O = {
    "400": _outcome("Not a valid FHIR R4 Bundle (structure, types or value formats); each issue names the path."),
    "401": _outcome("No API token, or one that is unknown, expired or revoked."),
    "403": _outcome("The token's scope or its owner's role does not allow this."),
    "404": _outcome("No such referral, or not one the token's owner may see, or nothing signed yet."),
    "413": _outcome("The request body is larger than the upload limit."),
    "415": _outcome("Send application/fhir+json (or application/json)."),
    "422": _outcome("A valid Bundle that cannot become a referral (missing patient data, question, site...)."),
}

CASE_ID = {"name": "case_id", "in": "path", "required": True, "description": "The referral's id (`id` in a Referral).",
           "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "example": 1}

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}, "request_id": {"type": "string"}},
    },
    "OperationOutcome": {
        "type": "object", "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
            "issue": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                }}},
        },
    },
    "Me": {
        "type": "object", "required": ["id", "name", "email", "role", "token"],
        "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": "string"},
            "role": {"type": "string", "enum": ["referring", "reviewer", "coordinator", "admin"]},
            "token": {"type": "object", "required": ["name", "scope", "expires_at"], "properties": {
                "name": {"type": "string"}, "scope": {"type": "string", "enum": list(SCOPES)},
                "expires_at": {"type": "string", "format": "date-time"}}},
        },
    },
    "PatientInput": {
        "type": "object", "additionalProperties": False, "required": ["name", "birth_date", "sex", "mrn"],
        "properties": {
            "name": _text(200), "birth_date": {"type": "string", "format": "date"},
            "sex": {"type": "string", "enum": list(SEXES)}, "mrn": _text(64, "The referring hospital's record number."),
        },
    },
    "HistoryInput": {
        "type": "object", "additionalProperties": False, "required": ["occurred_on", "kind", "text"],
        "properties": {"occurred_on": {"type": "string", "format": "date"},
                       "kind": {"type": "string", "enum": list(HISTORY_KINDS)}, "text": _text(5000)},
    },
    "DocumentInput": {
        "type": "object", "additionalProperties": False, "required": ["filename", "content_base64"],
        "properties": {
            "filename": _text(255, "For messages and the download name; the type is read from the content."),
            "content_base64": {"type": "string", "minLength": 4, "format": "byte",
                               "description": "The report (PDF, PNG, JPEG, TIFF, GIF or WebP), base64-encoded."},
        },
    },
    "ReferralInput": {
        "type": "object", "additionalProperties": False,
        "required": ["patient", "question", "diagnosis_in_question", "plan_in_question", "cancer_site", "priority"],
        "properties": {
            "patient": _ref("PatientInput"),
            "question": _text(5000, "What the reviewer is asked."),
            "diagnosis_in_question": _text(5000), "plan_in_question": _text(5000),
            "review_type": {"type": "string", "enum": list(REVIEW_TYPES),
                            "description": "Optional: follows from the lead discipline. Alone it names a discipline "
                                           "only for radiology_read and pathology_review."},
            "disciplines": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 32},
                            "description": "The disciplines the question needs (see the admin's list), lead first; "
                                           "further ones become contributing reviews. Required unless review_type "
                                           "names one."},
            "cancer_site": {"type": "string", "enum": list(CANCER_SITES)},
            "priority": {"type": "string", "enum": list(PRIORITIES)},
            "history": {"type": "array", "maxItems": 50, "items": _ref("HistoryInput")},
            "documents": {"type": "array", "maxItems": MAX_DOCUMENTS, "items": _ref("DocumentInput")},
        },
    },
    "Document": {
        "type": "object", "required": ["id", "filename", "content_type", "size", "sha256"],
        "properties": {"id": {"type": "integer"}, "filename": {"type": "string"}, "content_type": {"type": "string"},
                       "size": {"type": "integer"}, "sha256": {"type": "string"}},
    },
    "Study": {
        "type": "object", "required": ["study_instance_uid", "description", "series", "instances"],
        "properties": {"study_instance_uid": {"type": "string"}, "description": {"type": "string"},
                       "series": {"type": "integer"}, "instances": {"type": "integer"}},
    },
    "Letter": {
        "type": "object", "required": ["id", "version", "issued_at", "sha256", "url"],
        "properties": {"id": {"type": "integer"}, "version": {"type": "integer"},
                       "issued_at": {"type": "string", "format": "date-time"}, "sha256": {"type": "string"},
                       "acknowledged_at": {"type": "string", "format": "date-time", "nullable": True},
                       "url": {"type": "string"}},
    },
    "Referral": {
        "type": "object",
        "required": ["id", "reference", "status", "status_label", "fhir_status", "review_type", "cancer_site",
                     "priority", "submitted_at", "due_at", "closed_at", "on_hold", "patient", "question",
                     "diagnosis_in_question", "plan_in_question", "documents", "studies", "letters", "links"],
        "properties": {
            "id": {"type": "integer"}, "reference": {"type": "string", "example": "SO-2026-00042"},
            "status": {"type": "string", "enum": [str(s) for s in STATUS_LABELS]},
            "status_label": {"type": "string"},
            "fhir_status": {"type": "string", "enum": TASK_STATUSES, "description": "FHIR Task.status of the review."},
            "review_type": {"type": "string", "enum": list(REVIEW_TYPES)},
            "cancer_site": {"type": "string", "enum": list(CANCER_SITES)},
            "priority": {"type": "string", "enum": list(PRIORITIES)},
            "submitted_at": {"type": "string", "format": "date-time"},
            "due_at": {"type": "string", "format": "date-time"},
            "closed_at": {"type": "string", "format": "date-time", "nullable": True},
            "on_hold": {"type": "boolean", "description": "Waiting for information from the referring physician."},
            "patient": {"type": "object", "required": ["name", "birth_date", "sex", "mrn"], "properties": {
                "name": {"type": "string"}, "birth_date": {"type": "string", "format": "date"},
                "sex": {"type": "string", "enum": list(SEXES)}, "mrn": {"type": "string"}}},
            "question": {"type": "string"}, "diagnosis_in_question": {"type": "string"},
            "plan_in_question": {"type": "string"},
            "documents": {"type": "array", "items": _ref("Document")},
            "studies": {"type": "array", "items": _ref("Study")},
            "letters": {"type": "array", "items": _ref("Letter"), "description": "Newest version first."},
            "links": {"type": "object", "required": ["self", "task"], "properties": {
                "self": {"type": "string"}, "task": {"type": "string"}, "studies": {"type": "string"},
                "letter": {"type": "string"}, "diagnostic_report": {"type": "string"}}},
        },
    },
    "ReferralPage": {
        "type": "object", "required": ["items", "page", "per_page", "total", "next"],
        "properties": {"items": {"type": "array", "items": _ref("Referral")}, "page": {"type": "integer"},
                       "per_page": {"type": "integer"}, "total": {"type": "integer"},
                       "next": {"type": "string", "nullable": True, "description": "URL of the next page."}},
    },
    "Task": {
        "type": "object", "required": ["resourceType", "id", "identifier", "status", "intent", "businessStatus"],
        "description": "FHIR R4 Task (validated against the resource model before it is sent).",
        "properties": {"resourceType": {"type": "string", "enum": ["Task"]}, "id": {"type": "string"},
                       "identifier": {"type": "array", "items": {"type": "object"}},
                       "status": {"type": "string", "enum": TASK_STATUSES},
                       "intent": {"type": "string"}, "businessStatus": {"type": "object"},
                       "output": {"type": "array", "items": {"type": "object"}}},
    },
    "DiagnosticReport": {
        "type": "object", "required": ["resourceType", "id", "status", "code", "presentedForm"],
        "description": "FHIR R4 DiagnosticReport; presentedForm[0] is the signed letter (PDF, base64).",
        "properties": {"resourceType": {"type": "string", "enum": ["DiagnosticReport"]}, "id": {"type": "string"},
                       "status": {"type": "string", "enum": ["final", "amended", "appended", "corrected"]},
                       "code": {"type": "object"}, "conclusion": {"type": "string"},
                       "presentedForm": {"type": "array", "minItems": 1, "items": {"type": "object"}}},
    },
    "Bundle": {
        "type": "object", "required": ["resourceType", "type", "entry"],
        "description": (
            "FHIR R4 Bundle (type transaction, batch or collection) with one Patient (identifier = record number, "
            "name, full birthDate, gender), one ServiceRequest (subject = the Patient's fullUrl; note = the "
            "question; reasonCode.text = the diagnosis in question; extension "
            f"{EXT_PLAN_IN_QUESTION} valueString = the plan in question; bodySite coded in {SYSTEM_CANCER_SITE} "
            f"({', '.join(CANCER_SITES)}); optional code coded in {SYSTEM_REVIEW_TYPE} ({', '.join(REVIEW_TYPES)}, "
            "default oncology_opinion); priority routine | urgent | asap | stat) and any number of "
            "DocumentReferences whose content.attachment carries the report as base64 `data` "
            "(contentType application/pdf or an image)."),
        "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]},
                       "type": {"type": "string", "enum": ["transaction", "batch", "collection"]},
                       "entry": {"type": "array", "items": {"type": "object", "properties": {
                           "fullUrl": {"type": "string"}, "resource": {"type": "object"}}}}},
    },
}

_AUTH_401_403 = {"401": _E["401"], "403": _E["403"]}


def document() -> dict:
    paths = {
        "/openapi.json": {"get": {
            "operationId": "openapi_document", "summary": "This document.", "security": [], "tags": ["meta"],
            "responses": {"200": {"description": "OpenAPI 3 document.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/me": {"get": {
            "operationId": "whoami", "summary": "The token's owner and the token's scope and expiry.", "tags": ["meta"],
            "responses": {"200": {"description": "The token's owner.",
                                  "content": {"application/json": {"schema": _ref("Me")}}}, "401": _E["401"]}}},
        "/referrals": {
            "get": {
                "operationId": "list_referrals", "tags": ["referrals"],
                "summary": "The referrals the token's owner may see, open work first, then by deadline.",
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                                               "default": 1}},
                    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                   "maximum": MAX_PER_PAGE, "default": 25}},
                    {"name": "status", "in": "query",
                     "schema": {"type": "string", "enum": [str(s) for s in STATUS_LABELS]}},
                    {"name": "q", "in": "query", "description": "Free text: reference, patient name, MRN, referrer "
                     "or reviewer name (a substring, case-insensitive; % and _ are literal).",
                     "schema": {"type": "string", "maxLength": SEARCH_MAX}},
                    {"name": "priority", "in": "query", "schema": {"type": "string", "enum": list(PRIORITIES)}},
                    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS)}},
                    {"name": "dir", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"],
                                                              "default": "asc"}},
                ],
                "responses": {"200": {"description": "One page of referrals.",
                                      "content": {"application/json": {"schema": _ref("ReferralPage")}}},
                              "400": _E["400"], **_AUTH_401_403}},
            "post": {
                "operationId": "create_referral", "tags": ["referrals"],
                "summary": "Submit a referral with its reports (referring physicians; write scope).",
                "description": "Reports travel base64-encoded in `documents`; their type is read from the content. "
                               "Push the scans afterwards to `/referrals/{case_id}/studies` (STOW-RS).",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": _ref("ReferralInput")}}},
                "responses": {"201": {"description": "Created and routed to a reviewer (or to triage).",
                                      "headers": {"Location": {"schema": {"type": "string"},
                                                               "description": "The referral's URL."}},
                                      "content": {"application/json": {"schema": _ref("Referral")}}},
                              "400": _E["400"], **_AUTH_401_403, "413": _E["413"], "415": _E["415"]}},
        },
        "/referrals/{case_id}": {"get": {
            "operationId": "show_referral", "tags": ["referrals"], "summary": "A referral and its status.",
            "parameters": [CASE_ID],
            "responses": {"200": {"description": "The referral.",
                                  "content": {"application/json": {"schema": _ref("Referral")}}},
                          **_AUTH_401_403, "404": _E["404"]}}},
        "/referrals/{case_id}/letter": {"get": {
            "operationId": "download_letter", "tags": ["letters"],
            "summary": "The signed letter (PDF/A), latest version unless `version` is given.",
            "parameters": [CASE_ID, {"name": "version", "in": "query",
                                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": {"description": "The letter.",
                                  "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
                          "400": _E["400"], **_AUTH_401_403, "404": _E["404"]}}},
        "/referrals/{case_id}/studies": {"post": {
            "operationId": "store_studies", "tags": ["imaging"],
            "summary": "Push DICOM instances (STOW-RS; write scope). The same as "
                       "POST /dicomweb/cases/{case_id}/studies, which also accepts the token.",
            "parameters": [CASE_ID],
            "requestBody": {"required": True, "content": {
                'multipart/related; type="application/dicom"': {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {
                **{code: {"description": text, "content": {"application/dicom+json": {"schema": {"type": "object"}}}}
                   for code, text in (("200", "All instances stored (PS3.18 store instances response)."),
                                      ("202", "Some stored, some failed (FailedSOPSequence)."),
                                      ("409", "None stored."))},
                "400": _E["400"], **_AUTH_401_403, "404": _E["404"], "413": _E["413"], "415": _E["415"]}}},
        "/referrals/{case_id}/fhir/Task": {"get": {
            "operationId": "fhir_task", "tags": ["fhir"],
            "summary": "The review as a FHIR R4 Task; status follows the case, output links the DiagnosticReport.",
            "parameters": [CASE_ID],
            "responses": {"200": {"description": "Task.", "content": {"application/fhir+json": {"schema": _ref("Task")}}},
                          "401": _O["401"], "403": _O["403"], "404": _O["404"]}}},
        "/referrals/{case_id}/fhir/DiagnosticReport": {"get": {
            "operationId": "fhir_diagnostic_report", "tags": ["fhir"],
            "summary": "The signed opinion as a FHIR R4 DiagnosticReport with the letter PDF in presentedForm.",
            "parameters": [CASE_ID],
            "responses": {"200": {"description": "DiagnosticReport.",
                                  "content": {"application/fhir+json": {"schema": _ref("DiagnosticReport")}}},
                          "401": _O["401"], "403": _O["403"], "404": _O["404"]}}},
        "/fhir/Bundle": {"post": {
            "operationId": "fhir_intake", "tags": ["fhir"],
            "summary": "FHIR R4 intake: a Bundle with Patient, ServiceRequest and DocumentReferences becomes a "
                       "referral (referring physicians; write scope).",
            "requestBody": {"required": True, "content": {"application/fhir+json": {"schema": _ref("Bundle")},
                                                          "application/json": {"schema": _ref("Bundle")}}},
            "responses": {"201": {"description": "The referral's review as a Task; Location is the referral.",
                                  "headers": {"Location": {"schema": {"type": "string"}}},
                                  "content": {"application/fhir+json": {"schema": _ref("Task")}}},
                          **{c: _O[c] for c in ("400", "401", "403", "413", "415", "422")}}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Second Opinion Portal API", "version": "1.0.0",
            "description": (
                "For hospital systems: submit referrals with their reports, push studies, follow a referral's "
                "status, fetch the signed letter and its FHIR DiagnosticReport and Task. Authenticate with a "
                "personal API token (Security → API tokens in the portal) sent as `Authorization: Bearer <token>`. "
                "A token acts as its owner and sees exactly what its owner sees; read tokens may only GET. "
                "Errors are JSON `{error, status, request_id}`, or a FHIR OperationOutcome under the FHIR paths."),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": n} for n in ("meta", "referrals", "letters", "imaging", "fhir")],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "A personal API token (sop_...)."}},
            "schemas": SCHEMAS,
        },
    }
