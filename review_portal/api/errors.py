"""Errors of the API as JSON (`{"error", "status", "request_id"}`), and as a FHIR OperationOutcome on
FHIR paths. create_app's one error handler calls `api_error` for every request under /api/."""
from __future__ import annotations

import json

from flask import Response, g, jsonify, request

FHIR_JSON = "application/fhir+json"

# HTTP status → OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)
_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                409: "conflict", 413: "too-costly", 415: "not-supported", 422: "processing", 429: "throttled"}


def is_fhir_path(path: str | None = None) -> bool:
    path = path if path is not None else request.path
    return path.startswith("/api/v1/fhir/") or (path.startswith("/api/v1/") and "/fhir/" in path)


def operation_outcome(issues: list[dict]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": issues}


def issue(code: str, diagnostics: str, *, severity: str = "error", expression: str | None = None) -> dict:
    item = {"severity": severity, "code": code, "diagnostics": diagnostics[:2000]}
    if expression:
        item["expression"] = [expression[:500]]
    return item


def fhir_response(resource: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(resource), status=status, mimetype=FHIR_JSON, headers=headers or {})


def api_error(code: int, message: str) -> Response:
    if is_fhir_path():
        outcome = operation_outcome([issue(_ISSUE_CODES.get(code, "exception"), message)])
        return fhir_response(outcome, code)
    response = jsonify(error=message, status=code, request_id=g.get("request_id", ""))
    response.status_code = code
    return response


def refusal(code: int, message: str, *, insufficient_scope: bool = False) -> Response:
    response = api_error(code, message)
    challenge = 'Bearer realm="api"'
    if insufficient_scope:
        challenge += ', error="insufficient_scope", scope="write"'
    elif code == 401 and request.headers.get("Authorization"):
        challenge += ', error="invalid_token"'
    response.headers["WWW-Authenticate"] = challenge
    return response
