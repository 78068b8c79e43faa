"""The API's referral list shares the worklist's search: same scope, same literal matching, same audit."""
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from tests.api.conftest import bearer


def test_the_api_list_searches_and_sorts_within_the_owners_referrals(client, db, make_case, users, make_token):
    make_case("assigned", patient_name="Api Alpha", patient_mrn="API_1")
    make_case("assigned", patient_name="Api Bravo", patient_mrn="APIX1")
    make_case("assigned", patient_name="Api Other", by=users["other_referring"], cancer_site="gi")
    raw = make_token("referring", "read")
    got = client.get("/api/v1/referrals?q=api_1", headers=bearer(raw)).json
    assert got["total"] == 1 and [i["patient"]["name"] for i in got["items"]] == ["Api Alpha"]  # _ is literal
    first = client.get("/api/v1/referrals?q=api&sort=patient&dir=desc&per_page=1", headers=bearer(raw)).json
    assert first["total"] == 2 and [i["patient"]["name"] for i in first["items"]] == ["Api Bravo"]  # not another's
    assert "q=api" in first["next"] and "sort=patient" in first["next"] and "dir=desc" in first["next"]
    second = client.get(first["next"], headers=bearer(raw)).json
    assert [i["patient"]["name"] for i in second["items"]] == ["Api Alpha"]
    assert client.get("/api/v1/referrals?sort=nonsense", headers=bearer(raw)).status_code == 400
    assert client.get("/api/v1/referrals?dir=up", headers=bearer(raw)).status_code == 400
    assert client.get("/api/v1/referrals?priority=asap", headers=bearer(raw)).status_code == 400
    assert client.get("/api/v1/referrals?q=" + "x" * 101, headers=bearer(raw)).status_code == 400
    db.expire_all()
    searched = db.scalars(select(AuditEvent.detail).where(AuditEvent.action == "cases.searched")).all()
    assert any("API" in d and "q='api_1'" in d for d in searched)
