"""The measurements' JSON API: who may read, who may change, what the server computes, 409 once signed, CSRF."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from config import TestConfig
from review_portal import create_app
from review_portal.audit.models import AuditEvent
from review_portal.db import session as db_session
from review_portal.opinions.measurement_models import Measurement
from tests.conftest import PASSWORD, totp_now
from tests.phantom import SQUARE
from tests.services.test_measurements import phantom_case

SIDE = [[SQUARE["x0"], SQUARE["y0"]], [SQUARE["x0"] + SQUARE["side"], SQUARE["y0"]]]
JSON = {"X-Requested-With": "fetch", "Accept": "application/json"}


@pytest.fixture
def measured_case(db, storage, make_case, users, tmp_path):
    case, instance = phantom_case(db, storage, make_case, users, tmp_path)
    db.commit()
    return case, instance


def _new(instance, **over):
    return {"sop_instance_uid": instance.sop_instance_uid, "frame": 0, "kind": "length", "points": SIDE,
            "label": "Target lesion 1", **over}


def test_the_reviewer_measures_the_server_computes_and_the_browser_number_is_ignored(measured_case, login_as, db):
    case, instance = measured_case
    client = login_as("reviewer")
    r = client.post(f"/cases/{case.id}/measurements", json=_new(instance, values={"length": 1.0}), headers=JSON)
    assert r.status_code == 201, r.get_json()
    m = r.get_json()["measurement"]
    assert m["values"]["length"] == pytest.approx(21.0) and m["display"] == "21.0 mm" and m["calibrated"] is True
    assert m["editable"] is True and m["sop_instance_uid"] == instance.sop_instance_uid

    listed = client.get(f"/cases/{case.id}/measurements.json").get_json()
    assert listed["can_edit"] is True and [x["id"] for x in listed["measurements"]] == [m["id"]]

    r = client.patch(m["url"], json={"label": "Node 1", "points": [SIDE[0], [SQUARE["x0"], SQUARE["y0"] + 10]]},
                     headers=JSON)
    assert r.status_code == 200 and r.get_json()["measurement"]["display"] == "7.0 mm"
    page = client.get(f"/cases/{case.id}/opinion").get_data(as_text=True)
    assert 'id="measurements-panel"' in page and "Node 1" in page and "7.0 mm" in page
    assert client.delete(m["url"], headers=JSON).status_code == 200
    assert db.scalars(select(Measurement)).all() == []
    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)))
    assert {"measurement.created", "measurement.changed", "measurement.removed", "measurements.viewed"} <= actions


@pytest.mark.parametrize("who, read, write", [
    ("referring", 200, 403),
    ("other_referring", 404, 404),
    ("other_reviewer", 404, 404),
    ("coordinator", 200, 403),
])
def test_who_may_read_and_who_may_change(measured_case, login_as, who, read, write):
    case, instance = measured_case
    reviewer = login_as("reviewer")
    made = reviewer.post(f"/cases/{case.id}/measurements", json=_new(instance), headers=JSON).get_json()["measurement"]
    client = login_as(who)
    r = client.get(f"/cases/{case.id}/measurements.json", headers=JSON)
    assert r.status_code in ((read,) if read != 404 else (403, 404))
    if read == 200:
        assert r.get_json()["can_edit"] is False and r.get_json()["measurements"][0]["editable"] is False
    for response in (client.post(f"/cases/{case.id}/measurements", json=_new(instance), headers=JSON),
                     client.patch(made["url"], json={"label": "x"}, headers=JSON),
                     client.delete(made["url"], headers=JSON)):
        assert response.status_code in ((write,) if write != 404 else (403, 404))


@pytest.mark.parametrize("body, status", [
    ("not json", 400),
    ({"kind": "length"}, 404),  # no image named
    ({"points": [[0, 0], [999, 0]]}, 400),
    ({"points": "0,0,1,1"}, 400),
    ({"kind": "lasso"}, 400),
    ({"frame": 7}, 400),
    ({"label": "x" * 400}, 400),
])
def test_bad_requests_are_readable_4xx_and_keep_nothing(measured_case, login_as, db, body, status):
    case, instance = measured_case
    client = login_as("reviewer")
    if body == "not json":
        r = client.post(f"/cases/{case.id}/measurements", data="x", headers=JSON)
    elif "kind" in body and body["kind"] == "length":
        r = client.post(f"/cases/{case.id}/measurements", json=body, headers=JSON)
    else:
        r = client.post(f"/cases/{case.id}/measurements", json=_new(instance, **body), headers=JSON)
    assert r.status_code == status and r.get_json()["error"]
    assert db.scalars(select(Measurement)).all() == []


def test_after_signing_every_change_is_refused_with_409(measured_case, login_as, db):
    case, instance = measured_case
    client = login_as("reviewer")
    made = client.post(f"/cases/{case.id}/measurements", json=_new(instance), headers=JSON).get_json()["measurement"]
    draft = {"diagnosis_concordance": "refined", "plan_concordance": "modify", "reviewer_diagnosis": "Stage IB.",
             "recommended_plan": "Lobectomy.", "rationale": "Second focus.", "version": ""}
    assert client.post(f"/cases/{case.id}/opinion", data=draft).status_code == 302
    r = client.post(f"/cases/{case.id}/opinion/sign", data={"attest": "y", "password": PASSWORD})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    assert client.patch(made["url"], json={"label": "later"}, headers=JSON).status_code == 409
    assert client.delete(made["url"], headers=JSON).status_code == 409
    assert client.post(f"/cases/{case.id}/measurements", json=_new(instance), headers=JSON).status_code == 409
    listed = client.get(f"/cases/{case.id}/measurements.json").get_json()
    assert listed["can_edit"] is False and listed["measurements"][0]["frozen"] is True


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_the_api_needs_the_csrf_token_when_csrf_is_on(app, db, measured_case, users):
    case, instance = measured_case
    db_session.remove()
    csrf_app = create_app(TestConfig, WTF_CSRF_ENABLED=True, DATABASE_URL=app.config["DATABASE_URL"],
                          STORAGE_DIR=app.config["STORAGE_DIR"])
    client = csrf_app.test_client()
    token = _token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": users["reviewer"].email, "password": PASSWORD, "csrf_token": token})
    client.post("/login/mfa", data={"code": totp_now(), "csrf_token": _token(client.get("/login/mfa").get_data(as_text=True))})
    assert client.post(f"/cases/{case.id}/measurements", json=_new(instance), headers=JSON).status_code == 400
    page_token = _token(client.get(f"/cases/{case.id}/opinion").get_data(as_text=True))
    r = client.post(f"/cases/{case.id}/measurements", json=_new(instance), headers={**JSON, "X-CSRFToken": page_token})
    assert r.status_code == 201
    with csrf_app.app_context():
        assert len(db_session().scalars(select(Measurement)).all()) == 1
        db_session.remove()
