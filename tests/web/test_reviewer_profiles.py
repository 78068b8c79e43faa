"""Administrators edit reviewer profiles; the values are validated, audited and used by routing."""
import re

import pytest
from sqlalchemy import select

from review_portal.assignment.models import ReviewerProfile
from review_portal.assignment.routing import choose_reviewer
from review_portal.assignment.services import update_reviewer_profile
from review_portal.audit.models import AuditEvent
from review_portal.auth.models import Institution
from review_portal.errors import InvalidInput, PermissionDenied
from tests.conftest import NOW

CTX = {"ip": "127.0.0.1", "now": NOW}


def _form(users, db, **overrides):
    centre = db.scalar(select(Institution).where(Institution.name == "Reviewing Centre"))
    data = {"specialty": "medical_oncology", "sites": ["breast", "thoracic"], "institution_id": str(centre.id),
            "capacity": "0"}
    data.update(overrides)
    return data


def test_capacity_zero_makes_routing_skip_the_reviewer_with_that_reason(app, db, users, make_case, login_as):
    admin = login_as("admin")
    page = admin.get("/admin/reviewers").get_data(as_text=True)
    assert "Reviewer" in page and f"/admin/reviewers/{users['reviewer'].id}" in page
    r = admin.post(f"/admin/reviewers/{users['reviewer'].id}", data=_form(users, db))
    assert r.status_code == 302
    db.expire_all()
    assert db.get(ReviewerProfile, users["reviewer"].id).capacity == 0
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "reviewer.profile_updated"))
    assert event.actor_id == users["admin"].id and "capacity: 8 (default) → 0" in event.detail

    case = make_case("triage", cancer_site="thoracic")  # the only thoracic oncologist is now full
    assert case.status == "triage"
    assert "Reviewer: at capacity (0 of 0 open)" in case.lead_review.triage_reason

    # Back to the default (blank): routed again.
    assert admin.post(f"/admin/reviewers/{users['reviewer'].id}", data=_form(users, db, capacity="")).status_code == 302
    assert make_case("assigned", cancer_site="thoracic").reviewer.id == users["reviewer"].id


def test_sites_and_institution_changes_reach_routing(app, db, users, make_case, login_as):
    hospital = db.scalar(select(Institution).where(Institution.name == "Referring Hospital"))
    admin = login_as("admin")
    # Moving the GI oncologist to the referring hospital and giving them thoracic: a conflict, not a match.
    r = admin.post(f"/admin/reviewers/{users['other_reviewer'].id}",
                   data=_form(users, db, sites=["gi", "thoracic"], institution_id=str(hospital.id), capacity=""))
    assert r.status_code == 302
    db.expire_all()
    moved = db.get(type(users["other_reviewer"]), users["other_reviewer"].id)
    assert moved.sites == ["gi", "thoracic"] and moved.institution_id == hospital.id
    case = make_case("assigned", cancer_site="thoracic")
    assert case.reviewer.id == users["reviewer"].id
    decision = choose_reviewer(db, case.lead_review, NOW)
    assert "Other Reviewer: works at the referring institution (conflict of interest)" in decision.excluded
    # Same change, a case from elsewhere: now they are a thoracic match (and the less loaded one).
    elsewhere = make_case("assigned", cancer_site="thoracic", by=users["other_referring"])
    assert elsewhere.reviewer.id == users["other_reviewer"].id


@pytest.mark.parametrize("overrides, message", [
    ({"capacity": "-1"}, b"Capacity is a whole number from 0 to 50"),
    ({"capacity": "51"}, b"Capacity is a whole number from 0 to 50"),
    ({"capacity": "lots"}, b"Not a valid integer"),
    ({"sites": []}, b"at least one cancer site"),
    ({"sites": ["breast", "spleen"]}, b"not a valid choice"),
    ({"specialty": "astrology"}, b"Not a valid choice"),
    ({"reading_areas": ["chest"]}, b"radiologists only"),
    ({"institution_id": "0"}, b"Choose an institution"),
    ({"institution_id": "99999"}, b"Not a valid choice"),
])
def test_bad_profile_input_is_refused_readably_and_nothing_changes(app, db, users, login_as, overrides, message):
    r = login_as("admin").post(f"/admin/reviewers/{users['reviewer'].id}", data=_form(users, db, **overrides))
    assert r.status_code == 400 and message in r.data, r.data[-2000:]
    db.expire_all()
    assert db.get(ReviewerProfile, users["reviewer"].id) is None
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "reviewer.profile_updated")) is None


def test_the_service_validates_on_its_own_and_only_admins_edit(db, users, login_as):
    radiologist, centre_id = users["radiologist"], users["radiologist"].institution_id
    args = dict(specialty="radiology", sites=["breast"], reading_areas=[], institution_id=centre_id, capacity=3)
    with pytest.raises(InvalidInput, match="reading area"):
        update_reviewer_profile(db, radiologist, by=users["admin"], **args, **CTX)
    with pytest.raises(InvalidInput, match="Unknown reading area"):
        update_reviewer_profile(db, radiologist, by=users["admin"], **{**args, "reading_areas": ["feet"]}, **CTX)
    with pytest.raises(InvalidInput, match="not a reviewer"):
        update_reviewer_profile(db, users["coordinator"], by=users["admin"], **{**args, "reading_areas": ["body"]}, **CTX)
    with pytest.raises(PermissionDenied):
        update_reviewer_profile(db, radiologist, by=users["coordinator"], **{**args, "reading_areas": ["body"]}, **CTX)
    changes = update_reviewer_profile(db, radiologist, by=users["admin"], **{**args, "reading_areas": ["body"]}, **CTX)
    assert changes == ["sites: breast,thoracic → breast", "reading areas: breast,chest → body", "capacity: 8 → 3"]
    assert update_reviewer_profile(db, radiologist, by=users["admin"], **{**args, "reading_areas": ["body"]}, **CTX) == []
    db.commit()
    for role in ("coordinator", "reviewer", "referring"):
        client = login_as(role)
        assert client.get("/admin/reviewers").status_code == 403
        assert client.post(f"/admin/reviewers/{radiologist.id}", data={"capacity": "1"}).status_code == 403
    assert login_as("admin").get(f"/admin/reviewers/{users['coordinator'].id}").status_code == 404
    form = login_as("admin").get(f"/admin/reviewers/{radiologist.id}").get_data(as_text=True)
    checked = re.findall(r'<input checked id="reading_areas-\d+" name="reading_areas" type="checkbox" value="(\w+)"', form)
    assert checked == ["body"]
