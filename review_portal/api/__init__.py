"""The API for hospital systems: personal API tokens, the JSON API under /api/v1 (described by the
OpenAPI document at /api/v1/openapi.json), FHIR R4 intake (a Bundle becomes a referral) and output
(Task and DiagnosticReport)."""
