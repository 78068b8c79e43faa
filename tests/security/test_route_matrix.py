"""Every registered route × every role, built from app.url_map so no route can be forgotten.

Rules checked for EVERY route (including ones added later by other parts of the portal):
  * logged out: never a 2xx, except the public allowlist;
  * an unrelated user of the same role gets 403/404 on any route about a case they may not see;
  * non-admins never reach /admin/...
Known GET routes additionally have an expected status per role (EXPECTED); extend it when adding routes.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from review_portal.imaging.models import Series, Study
from review_portal.letters.models import Letter
from review_portal.security import PUBLIC_ENDPOINTS

ROLES = ["referring", "other_referring", "reviewer", "other_reviewer", "radiologist", "coordinator", "admin"]
OWNERS = {"referring", "reviewer", "coordinator", "admin"}  # may see case A
STRANGERS = {"other_referring", "other_reviewer", "radiologist"}  # same roles, not theirs

# Expected GET status on case A's objects, per role. Missing entries only get the generic rules.
EXPECTED = {
    "cases.show_case": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "cases.download_document": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "letters.download_letter": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "imaging.view_series": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "imaging.series_thumbnail": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "imaging.render_slice": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "privacy.export": {"referring": 403, "reviewer": 403, "coordinator": 200, "admin": 200},
    "audit.search_log": {r: (200 if r == "admin" else 403) for r in ROLES},
    "auth.users": {r: (200 if r == "admin" else 403) for r in ROLES},
    "cases.list_cases": {r: 200 for r in ROLES},
    "auth.account": {r: 200 for r in ROLES},
    "api_tokens.list_tokens": {r: 200 for r in ROLES},
    "api.openapi_document": {r: 200 for r in ROLES},
}
# The JSON API takes bearer tokens only: a logged-in browser session gets 401 on every /api/v1 route.
API_PUBLIC = {"api.openapi_document"}


def _is_api(endpoint: str) -> bool:
    return endpoint.startswith("api.") and endpoint not in API_PUBLIC


# With a token of each role, GET on case A's objects through /api/v1 (case A has its letter delivered).
API_EXPECTED = {
    "api.show_referral": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "api.download_letter": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "api.fhir_task": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "api.fhir_diagnostic_report": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "api.list_referrals": {r: 200 for r in ROLES},
    "api.whoami": {r: 200 for r in ROLES},
}


@pytest.fixture
def world(app, db, users, make_case, login_as, tmp_path):
    from weasyprint import HTML

    from review_portal.cases.services import HistoryItem, UploadedFile, submit_referral
    from tests.conftest import NOW, TURNAROUND, referral

    pdf = tmp_path / "r.pdf"
    HTML(string="<p>report</p>").write_pdf(pdf)
    # Case A: referring → reviewer, with a document, scans and a letter.
    case_a = make_case("letter_delivered", scans=["CT_small.dcm"])
    from review_portal.cases.services import add_document

    add_document(db, app.extensions["storage"], case_a, UploadedFile("r.pdf", pdf), by=users["referring"], now=NOW)
    db.commit()
    case_b = make_case("assigned", by=users["other_referring"], cancer_site="gi")
    from review_portal.auth.services import create_user

    bystander = create_user(db, email="bystander@test.example", name="By Stander", password="a-quiet-onlooker-2026",
                            role="referring", now=NOW)
    db.commit()
    series = db.scalar(select(Series).join(Study).where(Study.case_id == case_a.id))
    letter = db.scalar(select(Letter).where(Letter.case_id == case_a.id))
    ids = {"case_id": case_a.id, "series_id": series.id, "letter_id": letter.id,
           "document_id": case_a.documents[0].id, "index": 0, "user_id": bystander.id, "grant_id": 1,
           "token": "not-a-token"}
    clients = {role: login_as(role) for role in ROLES}
    return {"a": case_a, "b": case_b, "ids": ids, "clients": clients, "login_as": login_as}


def _url(rule, ids):
    from flask import url_for

    values = {}
    for arg in rule.arguments:
        if arg == "filename":
            values[arg] = "css/portal.css"
        elif arg == "fmt":
            values[arg] = "png"
        else:
            values[arg] = ids.get(arg, 1)
    return url_for(rule.endpoint, **values)


def _rules(app):
    return [r for r in app.url_map.iter_rules()]


def test_every_route_denies_by_default_and_by_object(app, world):
    checked = 0
    for rule in _rules(app):
        with app.test_request_context():
            url = _url(rule, world["ids"])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            anon = app.test_client().open(url, method=method)
            if rule.endpoint not in PUBLIC_ENDPOINTS:
                assert anon.status_code in (302, 401), (rule.endpoint, method, anon.status_code)
                if anon.status_code == 302:
                    assert "/login" in anon.headers["Location"]
                if _is_api(rule.endpoint):
                    assert anon.status_code == 401 and anon.is_json, (rule.endpoint, method)
            for role in ROLES:
                # A state-changing call (logout, log out everywhere...) gets a fresh session so later checks still run.
                client = world["clients"][role] if method == "GET" else world["login_as"](role)
                r = client.open(url, method=method)
                if method == "GET" and r.status_code == 302 and "/login" in r.headers["Location"]:
                    # An earlier "log out everywhere" ended this role's cached session: log in again and retry.
                    world["clients"][role] = client = world["login_as"](role)
                    r = client.open(url, method=method)
                assert r.status_code != 500, (rule.endpoint, role, method)
                if _is_api(rule.endpoint):
                    # The session cookie is no credential for the API, with or without CSRF protection.
                    assert r.status_code == 401 and r.is_json, (rule.endpoint, role, method, r.status_code)
                    checked += 1
                    continue
                if "case_id" in rule.arguments and role in STRANGERS:
                    assert r.status_code in (403, 404), (rule.endpoint, role, method, r.status_code)
                if rule.rule.startswith("/admin") and role != "admin":
                    assert r.status_code == 403, (rule.endpoint, role, method, r.status_code)
                expected = EXPECTED.get(rule.endpoint, {}).get(role)
                if method == "GET" and expected is not None:
                    assert r.status_code == expected, (rule.endpoint, role, r.status_code)
                checked += 1
    assert checked > 100


def test_sequential_id_guessing_finds_nothing(app, world):
    a, b = world["a"], world["b"]
    guesser = world["clients"]["other_referring"]
    visible = [n for n in range(1, max(a.id, b.id) + 20) if guesser.get(f"/cases/{n}").status_code == 200]
    assert visible == [b.id]
    reviewer = world["clients"]["other_reviewer"]
    for path in (f"/cases/{a.id}/documents/{world['ids']['document_id']}", f"/cases/{a.id}/letters/{world['ids']['letter_id']}.pdf",
                 f"/cases/{a.id}/series/{world['ids']['series_id']}/slices/0.png", f"/cases/{b.id}/series/{world['ids']['series_id']}"):
        assert reviewer.get(path).status_code == 404, path
    # The owner of case B cannot reach case A's series by putting A's series id under B.
    owner_b = world["clients"]["other_referring"]
    assert owner_b.get(f"/cases/{b.id}/series/{world['ids']['series_id']}").status_code == 404
    assert owner_b.get(f"/cases/{b.id}/letters/{world['ids']['letter_id']}.pdf").status_code == 404


def test_api_routes_by_token_per_role(app, db, world):
    """Every /api/v1 route × every role, with that role's own write token: never a 500, strangers never reach
    case A (404), and the known GETs answer as expected."""
    from review_portal.api.services import create_token
    from review_portal.auth.models import User
    from review_portal.clock import utcnow

    tokens = {}
    for role in ROLES:
        user = db.scalar(select(User).where(User.email == f"{role}@test.example"))
        tokens[role] = create_token(db, name="matrix", scope="write", days=7, by=user, ip="", now=utcnow())[1]
    db.commit()
    checked = 0
    for rule in _rules(app):
        if not _is_api(rule.endpoint):
            continue
        with app.test_request_context():
            url = _url(rule, world["ids"])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for role in ROLES:
                r = app.test_client().open(url, method=method, headers={"Authorization": f"Bearer {tokens[role]}"})
                assert r.status_code != 500, (rule.endpoint, role, method)
                if r.status_code >= 400:
                    assert r.is_json, (rule.endpoint, role, method, r.mimetype)  # JSON or OperationOutcome
                if "case_id" in rule.arguments and role in STRANGERS:
                    assert r.status_code == 404, (rule.endpoint, role, method, r.status_code)
                expected = API_EXPECTED.get(rule.endpoint, {}).get(role)
                if method == "GET" and expected is not None:
                    assert r.status_code == expected, (rule.endpoint, role, r.status_code)
                checked += 1
    assert checked >= 60
