"""Property-based test of /api/v1 against its own OpenAPI document (schemathesis 4, in-process WSGI).

For every documented operation, Hypothesis draws requests from schemathesis' strategies: valid ones
(positive), invalid ones (negative), and valid ones aimed at referral 1, which has a signed letter, so
every operation's success path is exercised too. No response may be a 500 or differ from the document
(status code, content type, body schema, documented headers). Bounded and deterministic: a few examples
per operation and mode, no example database. The STOW-RS alias is left out: its body is a multipart/related
DICOM stream that cannot be drawn from a schema (tests/api/test_api_routes.py covers it).

Schemathesis' own pytest plugin (`from_fixture`) does not run under pytest 9, so the strategies are used
with plain `@given` here.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance,
)

from review_portal.api.openapi import document
from tests.api.conftest import bearer

EXAMPLES = 8
SKIPPED = {"store_studies"}


def _operations() -> list[tuple[str, str, str, list[str]]]:
    """(path, method, operationId, modes): negative only where there is input to break, "referral 1" where
    the path names a referral."""
    operations = []
    for path, item in document()["paths"].items():
        for method, op in item.items():
            if op["operationId"] in SKIPPED:
                continue
            modes = ["positive"]
            if op.get("parameters") or op.get("requestBody"):
                modes.append("negative")
            if "{case_id}" in path:
                modes.append("referral 1")
            operations.append((path, method, op["operationId"], modes))
    return operations


OPERATIONS = _operations()
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def api_schema(app, make_case, make_token):
    case = make_case("letter_delivered")
    assert case.id == 1
    make_case("assigned")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.generation.update(deterministic=True, database="none")
    return schema, make_token("referring", "write")


@pytest.mark.parametrize("path,method,operation_id,modes", OPERATIONS, ids=[o[2] for o in OPERATIONS])
def test_api_matches_its_openapi_document(api_schema, path, method, operation_id, modes):
    schema, token = api_schema
    operation = schema[path][method]
    for mode in modes:
        kwargs = {"headers": bearer(token)}
        if mode == "referral 1":
            kwargs["path_parameters"] = {"case_id": 1}
        generation = GenerationMode.NEGATIVE if mode == "negative" else GenerationMode.POSITIVE
        calls = []

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation, **kwargs))
        def check(case):
            response = case.call_and_validate(checks=CHECKS)
            calls.append(response.status_code)

        check()
        assert calls, (mode, "no request was made")
        if mode == "referral 1" and method == "get":
            assert 200 in calls, (mode, calls)
