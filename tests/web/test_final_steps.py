"""Close, cancel and withdraw are final: the case page says so, and a POST without the ticked confirmation is
refused (400) and changes nothing."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case


def _step(html: str, step: str) -> str:
    match = re.search(rf'<details class="final-step" id="{step}-step">(.*?)</details>', html, re.S)
    assert match, f"no {step} step on the page"
    return match.group(1)


def test_the_case_page_says_what_cannot_be_undone(make_case, login_as):
    delivered = make_case("acknowledged")
    html = login_as("referring").get(f"/cases/{delivered.id}").get_data(as_text=True)
    close = _step(html, "close")
    assert "Closing is final: no further follow-up questions can be asked. This cannot be undone." in close
    assert 'name="confirm"' in close and "required" in close and 'type="submit"' in close
    open_case = make_case("in_review", cancer_site="thoracic")
    html = login_as("coordinator").get(f"/cases/{open_case.id}").get_data(as_text=True)
    assert "This cannot be undone." in _step(html, "cancel") and "This cannot be undone." in _step(html, "withdraw")
    # The confirmation needs no inline script or style (the CSP forbids both).
    for step in ("cancel", "withdraw"):
        assert "style=" not in _step(html, step) and "<script" not in _step(html, step)
        assert "onclick" not in _step(html, step)


@pytest.mark.parametrize("action, status, who, data, after", [
    ("close", "acknowledged", "referring", {}, "closed"),
    ("cancel", "in_review", "coordinator", {"reason": "Duplicate of SO-1"}, "cancelled"),
    ("withdraw", "in_review", "referring", {"reason": "Patient chose local care."}, "withdrawn"),
])
def test_a_final_step_without_confirmation_is_refused_and_changes_nothing(db, make_case, login_as, action, status,
                                                                          who, data, after):
    case = make_case(status, cancer_site="thoracic")
    cid = case.id
    client = login_as(who)
    events_before = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.case_id == cid))
    for refused in ({}, {"confirm": ""}):
        r = client.post(f"/cases/{cid}/{action}", data=data | refused)
        assert r.status_code == 400 and "cannot be undone" in r.get_data(as_text=True)
        db.expire_all()
        assert db.get(Case, cid).status == status
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.case_id == cid, AuditEvent.action.in_(["case.withdrawn", "case.cancelled"]))) == 0
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.case_id == cid)) >= events_before

    r = client.post(f"/cases/{cid}/{action}", data=data | {"confirm": "yes"})
    assert r.status_code == 302
    db.expire_all()
    assert db.get(Case, cid).status == after and db.get(Case, cid).closed_at is not None
