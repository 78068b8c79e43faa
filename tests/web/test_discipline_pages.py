"""The administrators' disciplines page, and the referral form offering only the active disciplines."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case, Discipline
from tests.web.test_referrals import form


def _discipline(db, key) -> Discipline:
    db.expire_all()
    return db.scalar(select(Discipline).where(Discipline.key == key))


def _csrf(page: str) -> str:
    """The form's token when the test configuration checks them (it may not)."""
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    return found.group(1) if found else ""


@pytest.mark.parametrize("role", ["coordinator", "reviewer", "referring", "radiologist"])
def test_the_disciplines_page_is_for_administrators_only(db, users, login_as, role):
    client = login_as(role)
    medical = _discipline(db, "medical_oncology")
    assert client.get("/admin/disciplines").status_code == 403
    assert client.post("/admin/disciplines", data={"key": "x_ray", "label": "X", "specialty": "radiology"}).status_code == 403
    assert client.post(f"/admin/disciplines/{medical.id}/rename", data={"label": "Chemo"}).status_code == 403
    assert client.post(f"/admin/disciplines/{medical.id}/deactivate").status_code == 403
    after = _discipline(db, "medical_oncology")
    assert (after.label, after.active) == ("Medical oncology", True)
    assert _discipline(db, "x_ray") is None


def test_admin_lists_adds_renames_and_deactivates(db, users, login_as):
    admin = login_as("admin")
    page = admin.get("/admin/disciplines").get_data(as_text=True)
    for label in ("Medical oncology", "Radiation oncology", "Surgical oncology", "Radiology", "Pathology"):
        assert f"<td>{label}</td>" in page
    token = _csrf(page)
    r = admin.post("/admin/disciplines", data={"csrf_token": token, "key": "neuro_oncology", "label": "Neuro-oncology",
                                               "specialty": "medical_oncology"})
    assert r.status_code == 302
    added = _discipline(db, "neuro_oncology")
    assert (added.label, added.specialty, added.active) == ("Neuro-oncology", "medical_oncology", True)
    assert admin.post(f"/admin/disciplines/{added.id}/rename",
                      data={"csrf_token": token, "label": "Neuro oncology"}).status_code == 302
    assert admin.post(f"/admin/disciplines/{added.id}/deactivate", data={"csrf_token": token}).status_code == 302
    added = _discipline(db, "neuro_oncology")
    assert (added.label, added.active) == ("Neuro oncology", False)
    assert "<td>no</td>" in admin.get("/admin/disciplines").get_data(as_text=True)
    events = db.scalars(select(AuditEvent).where(AuditEvent.object_type == "discipline")).all()
    assert sorted(e.action for e in events) == ["discipline.added", "discipline.deactivated", "discipline.renamed"]
    assert all(e.actor_id == users["admin"].id for e in events)
    # A bad key is refused with the reason, and nothing is added.
    r = admin.post("/admin/disciplines", data={"csrf_token": token, "key": "Bad Key!", "label": "Bad",
                                               "specialty": "radiology"})
    assert r.status_code == 400 and "lower-case letters" in r.get_data(as_text=True)


def test_the_referral_form_offers_only_active_disciplines(db, users, login_as):
    _discipline(db, "surgical_oncology").active = False
    db.commit()
    page = login_as("referring").get("/referrals/new").get_data(as_text=True)
    lead = re.search(r'<select[^>]*id="discipline".*?</select>', page, re.DOTALL).group(0)
    offered = re.findall(r'<option[^>]*value="([^"]*)"', lead)
    assert offered == ["", "medical_oncology", "pathology", "radiation_oncology", "radiology"]
    more = re.search(r'id="more_disciplines".*?</ul>', page, re.DOTALL).group(0)
    assert sorted(re.findall(r'value="([^"]+)"', more)) == ["medical_oncology", "pathology", "radiation_oncology",
                                                           "radiology"]
    assert "surgical_oncology" not in page and "Surgical oncology" not in page


def test_a_deactivated_discipline_posted_anyway_is_refused(db, users, login_as):
    _discipline(db, "surgical_oncology").active = False
    db.commit()
    client = login_as("referring")
    r = client.post("/referrals/new", data=form(discipline="surgical_oncology"), headers={"X-Requested-With": "fetch"})
    assert r.status_code == 400
    assert r.get_json()["fields"]["discipline"] == ["Choose one of the disciplines offered."]
    assert db.scalar(select(Case.id)) is None


def test_the_form_sends_the_lead_and_further_disciplines(db, users, login_as):
    client = login_as("referring")
    r = client.post("/referrals/new", data=form(discipline="medical_oncology",
                                                more_disciplines=["radiology", "medical_oncology"]))
    assert r.status_code == 302
    db.expire_all()
    case = db.scalar(select(Case))
    assert case.discipline == "medical_oncology"
    assert sorted((r.discipline, r.is_lead) for r in case.reviews) == [("medical_oncology", True), ("radiology", False)]
    assert case.reviewer.id == users["reviewer"].id


def test_a_coordinator_adds_a_review_by_discipline(db, users, make_case, login_as):
    case_id, radiologist_id = make_case("in_review", cancer_site="breast").id, users["radiologist"].id
    _discipline(db, "surgical_oncology").active = False
    db.commit()
    coordinator = login_as("coordinator")
    page = coordinator.get(f"/cases/{case_id}").get_data(as_text=True)
    offered = re.findall(r'<option[^>]*value="([^"]*)"', re.search(r'<form[^>]*class="add-review".*?</form>', page, re.DOTALL).group(0))
    assert offered == ["", "medical_oncology", "pathology", "radiation_oncology", "radiology"]
    r = coordinator.post(f"/cases/{case_id}/reviews", data={"discipline": "radiology"})
    assert r.status_code in (200, 302)
    db.expire_all()
    added = next(rv for rv in db.get(Case, case_id).reviews if not rv.is_lead)
    assert (added.discipline, added.review_type, added.reviewer.id) == ("radiology", "radiology_read", radiologist_id)
    assert coordinator.post(f"/cases/{case_id}/reviews", data={"discipline": "surgical_oncology"}).status_code == 400
    assert len(db.get(Case, case_id).reviews) == 2
