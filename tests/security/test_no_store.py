"""Class 12: no answer carrying patient data may be kept by a browser or a proxy.

Walks app.url_map like test_route_matrix (so a route added later is covered too): every GET answer, whatever
its status, carries `Cache-Control: no-store`, for a logged-in member of the case team and for an API token;
only static assets and the public endpoints may be cached.
"""
from __future__ import annotations

from sqlalchemy import select

from review_portal.security import PUBLIC_ENDPOINTS
from tests.security.test_route_matrix import _is_api, _rules, _url, world  # noqa: F401  (world is a fixture)


def _gets(app):
    return [r for r in _rules(app) if "GET" in (r.methods or ())]


def test_every_answer_with_patient_data_is_no_store(app, db, world):
    from review_portal.api.services import create_token
    from review_portal.auth.models import User
    from review_portal.clock import utcnow

    coordinator = db.scalar(select(User).where(User.email == "coordinator@test.example"))
    token = create_token(db, name="cache", scope="read", days=7, by=coordinator, ip="", now=utcnow())[1]
    db.commit()
    session = world["clients"]["coordinator"]
    checked = set()
    for rule in _gets(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        with app.test_request_context():
            url = _url(rule, world["ids"])
        if _is_api(rule.endpoint):
            r = app.test_client().get(url, headers={"Authorization": f"Bearer {token}"}, buffered=True)
        else:
            r = session.get(url, buffered=True)
        assert r.headers.get("Cache-Control") == "no-store", (rule.endpoint, r.status_code, r.headers.get("Cache-Control"))
        assert "Expires" not in r.headers, rule.endpoint
        if r.status_code == 200:
            checked.add(rule.endpoint)
    # The answers that carry patient images, letters and documents were among those checked with a 200.
    assert {"imaging.series_thumbnail", "imaging.render_slice", "imaging.key_image_png", "letters.download_letter",
            "cases.download_document", "dicomweb.retrieve_instance", "dicomweb.render_instance", "workflow.show_case",
            "api.download_letter", "api.show_referral", "letters.fhir_diagnostic_report"} <= checked


def test_a_conditional_image_request_is_still_no_store(world):
    ids, client = world["ids"], world["clients"]["reviewer"]
    url = f"/cases/{ids['case_id']}/series/{ids['series_id']}/thumbnail.png"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.headers["Cache-Control"] == "no-store"


def test_static_assets_and_public_pages_stay_cacheable(app, client):
    r = client.get("/static/css/portal.css")
    assert r.status_code == 200 and "no-store" not in r.headers.get("Cache-Control", "")
    r = client.get("/api/v1/openapi.json")  # no patient data: integrators may cache the description
    assert r.status_code == 200 and r.headers["Cache-Control"] == "public, max-age=300"
