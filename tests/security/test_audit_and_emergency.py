"""Audit controls (HIPAA 164.312(b), (c)(1); ASVS V7) and emergency access."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select, text

from review_portal.audit.chain import seal, verify
from review_portal.audit.models import AuditEvent
from review_portal.cases.models import EmergencyAccess
from review_portal.cases.models import Case


def events(db, **where):
    db.expire_all()
    q = select(AuditEvent)
    for k, v in where.items():
        q = q.where(getattr(AuditEvent, k) == v)
    return db.scalars(q.order_by(AuditEvent.id)).all()


def test_case_view_is_audited_with_who_what_patient_where_and_outcome(make_case, login_as, db):
    case = make_case("assigned")
    c = login_as("reviewer")
    c.get(f"/cases/{case.id}", headers={"User-Agent": "TestBrowser/1.0"})
    e = events(db, action="case.viewed")[-1]
    assert (e.actor_email, e.actor_role, e.case_ref, e.patient_mrn, e.outcome) == (
        "reviewer@test.example", "reviewer", case.reference, "MRN-1", "success")
    assert e.source_ip and e.user_agent == "TestBrowser/1.0" and e.request_id


def test_denied_access_to_an_existing_case_is_audited_and_survives_the_rollback(make_case, login_as, db):
    case = make_case("assigned")
    assert login_as("other_referring").get(f"/cases/{case.id}").status_code == 404
    denied = events(db, action="access.denied")
    assert denied and denied[-1].case_id == case.id and denied[-1].outcome == "denied"
    assert login_as("other_referring").get("/cases/99999").status_code == 404  # no such case: nothing to audit
    assert len(events(db, action="access.denied")) == 1


def test_chain_verifies_then_names_the_edited_row(app, make_case, login_as, db):
    case = make_case("closed")
    login_as("coordinator").get(f"/cases/{case.id}")
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit-verify"])
    assert ok.exit_code == 0 and "intact" in ok.output
    target = events(db, action="case.viewed")[-1]
    with app.extensions["db_engine"].begin() as conn:  # an insider edits the trail directly in the database
        conn.execute(text("UPDATE audit_events SET actor_email = 'someone-else@x' WHERE id = :i"), {"i": target.id})
    bad = runner.invoke(args=["audit-verify"])
    assert bad.exit_code == 1 and f"id {target.id}" in bad.output


def test_deleting_a_row_breaks_the_chain(app, make_case, db):
    make_case("assigned")
    seal(app.extensions["db_engine"])
    victim = events(db)[0]  # the tail can only be checked against a head hash kept elsewhere
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": victim.id})
    verdict = verify(db)
    assert not verdict.ok and "missing" in verdict.problem


def test_admin_searches_and_exports_disclosures_for_one_patient(make_case, login_as, db):
    mine = make_case("assigned", patient_mrn="=HYPERLINK(1)")
    other = make_case("assigned", patient_mrn="OTHER-9", patient_name="Other Person")
    login_as("reviewer").get(f"/cases/{mine.id}")
    admin = login_as("admin")
    page = admin.get("/admin/audit?patient=%3DHYPERLINK(1)&user=reviewer").get_data(as_text=True)
    assert "case.viewed" in page and "OTHER-9" not in page
    assert login_as("coordinator").get("/admin/audit").status_code == 403
    r = admin.get("/admin/audit/disclosures.csv?patient_mrn=%3DHYPERLINK(1)")
    assert r.status_code == 200 and r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) > 2 and all(row[4] == mine.reference for row in rows[1:])
    assert other.reference not in r.get_data(as_text=True)
    assert events(db, action="audit.disclosures_exported")


def test_mfa_changes_are_audited(users, login_as, db):
    admin = login_as("admin")
    admin.post(f"/admin/users/{users['reviewer'].id}/reset-mfa")
    e = events(db, action="mfa.reset")[-1]
    assert e.actor_email == "admin@test.example" and e.object_id == str(users["reviewer"].id)


def _archive(db, case, days=90):
    db.get(Case, case.id).closed_at = case.closed_at - timedelta(days=days)
    db.commit()


def test_emergency_access_needs_a_reason_is_flagged_and_reviewed(app, make_case, login_as, db, users, clock):
    case = make_case("closed")
    _archive(db, case)
    coord = login_as("coordinator")
    r = coord.get(f"/cases/{case.id}")
    assert r.status_code == 403 and b"emergency" in r.data.lower()
    assert coord.post(f"/cases/{case.id}/emergency-access", data={"reason": "need it"}).status_code == 400
    assert login_as("referring").post(f"/cases/{case.id}/emergency-access",
                                      data={"reason": "I would like to look at it again"}).status_code == 403
    reason = "Patient re-presented at the ED; previous opinion needed now"
    assert coord.post(f"/cases/{case.id}/emergency-access", data={"reason": reason}).status_code == 302
    assert coord.get(f"/cases/{case.id}").status_code == 200
    view = events(db, action="case.viewed")[-1]
    assert view.flagged and view.reason == reason
    granted = events(db, action="emergency_access.granted")[-1]
    assert granted.flagged and granted.reason == reason
    # Another coordinator still has no access; the admin reviews the grant.
    grant = db.scalar(select(EmergencyAccess))
    assert reason in login_as("admin").get("/admin/audit").get_data(as_text=True)
    assert login_as("admin").post(f"/admin/emergency/{grant.id}/review", data={"note": "justified"}).status_code == 302
    db.expire_all()
    assert db.get(EmergencyAccess, grant.id).reviewed_at is not None
    # The grant lasts an hour (EMERGENCY_ACCESS_MINUTES), however busy the coordinator keeps the session.
    assert app.config["EMERGENCY_ACCESS_MINUTES"] == 60
    for _ in range(4):
        clock.advance(minutes=14)
        assert coord.get(f"/cases/{case.id}").status_code == 200
    clock.advance(minutes=4, seconds=1)  # an hour and a second after the grant
    assert coord.get(f"/cases/{case.id}").status_code == 403
