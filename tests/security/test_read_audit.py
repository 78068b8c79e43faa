"""Every read of patient data leaves an audit row (class 6): the worklist, the API's referral list, a case's
letters and the opinion page write one event per case shown, not again within the window, in one batch; a series
page load is one series.viewed (plus its images.viewed), not two."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event as sa_event
from sqlalchemy import select

from review_portal.api.services import create_token
from review_portal.audit.models import AuditEvent
from review_portal.audit.services import LIST_VIEW_WINDOW, disclosures_csv, record_list_view
from review_portal.clock import utcnow
from tests.conftest import NOW


def _events(db, action, **where):
    db.expire_all()
    q = select(AuditEvent).where(AuditEvent.action == action)
    for k, v in where.items():
        q = q.where(getattr(AuditEvent, k) == v)
    return db.scalars(q.order_by(AuditEvent.id)).all()


def test_the_worklist_writes_one_row_per_case_shown_and_none_on_a_reload_within_the_window(
        db, users, make_case, login_as, clock):
    a = make_case("assigned", patient_mrn="MRN-A", patient_name="Alice Able")
    b = make_case("in_review", patient_mrn="MRN-B", patient_name="Bob Baker")
    coordinator = login_as("coordinator")
    assert coordinator.get("/cases").status_code == 200
    rows = _events(db, "case.listed")
    assert sorted((e.case_id, e.patient_mrn, e.actor_email) for e in rows) == sorted(
        [(a.id, "MRN-A", users["coordinator"].email), (b.id, "MRN-B", users["coordinator"].email)])
    assert coordinator.get("/cases").status_code == 200
    clock.advance(minutes=5)
    assert coordinator.get("/cases?page=1").status_code == 200
    assert len(_events(db, "case.listed")) == 2  # reloads within the window: nothing new
    # Another user is another disclosure; after the window the same user is recorded again.
    assert login_as("referring").get("/cases").status_code == 200
    assert len(_events(db, "case.listed", actor_email=users["referring"].email)) == 2
    clock.advance(LIST_VIEW_WINDOW)
    assert coordinator.get("/cases").status_code == 200
    assert len(_events(db, "case.listed", actor_email=users["coordinator"].email)) == 4
    # The accounting of disclosures for the patient names the list.
    csv_text = disclosures_csv(db, patient_mrn="MRN-A")
    assert "case.listed" in csv_text and users["coordinator"].email in csv_text


def test_the_api_referral_list_is_audited_per_case(app, db, users, make_case, clock):
    case = make_case("assigned")
    _, token = create_token(db, name="EHR", scope="read", days=7, by=users["referring"], ip="127.0.0.1", now=utcnow())
    db.commit()
    c = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/v1/referrals", headers=headers).status_code == 200
    [row] = _events(db, "case.listed")
    assert (row.case_id, row.patient_mrn, row.detail.split(";")[0]) == (case.id, "MRN-1", "API")
    assert c.get("/api/v1/referrals", headers=headers).status_code == 200
    assert len(_events(db, "case.listed")) == 1
    assert "case.listed" in disclosures_csv(db, patient_mrn="MRN-1")


def test_the_letters_page_and_the_opinion_page_are_audited_once_per_window(db, users, make_case, login_as, clock):
    signed = make_case("letter_delivered", patient_mrn="MRN-L")
    referring = login_as("referring")
    assert referring.get(f"/cases/{signed.id}/letters").status_code == 200
    assert referring.get(f"/cases/{signed.id}/letters").status_code == 200
    [row] = _events(db, "letters.viewed")
    assert (row.case_id, row.patient_mrn, row.actor_email) == (signed.id, "MRN-L", users["referring"].email)

    drafting = make_case("in_review", patient_mrn="MRN-O")
    reviewer = login_as("reviewer")
    assert reviewer.get(f"/cases/{drafting.id}/opinion").status_code == 200
    assert reviewer.get(f"/cases/{drafting.id}/opinion").status_code == 200
    [row] = _events(db, "opinion.viewed")
    assert (row.case_id, row.patient_mrn, row.actor_email) == (drafting.id, "MRN-O", users["reviewer"].email)
    assert "opinion.viewed" in disclosures_csv(db, patient_mrn="MRN-O")
    assert "letters.viewed" in disclosures_csv(db, patient_mrn="MRN-L")


def test_a_list_is_audited_with_one_select_and_one_insert(app, db, users, make_case):
    cases = [make_case("assigned", patient_mrn=f"MRN-{i}") for i in range(6)]
    record_list_view(db, cases[:2], by=users["coordinator"], ip="10.0.0.1", now=NOW, what="case.listed")
    db.flush()
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement.split()[0].upper())

    engine = db.get_bind()
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        new = record_list_view(db, cases, by=users["coordinator"], ip="10.0.0.1", now=NOW + timedelta(minutes=1),
                               what="case.listed")
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert new == 4 and statements == ["SELECT", "INSERT"]
    db.commit()
    written = db.scalars(select(AuditEvent).where(AuditEvent.action == "case.listed").order_by(AuditEvent.id)).all()
    assert sorted(e.case_id for e in written[2:]) == sorted(c.id for c in cases[2:])
    assert all(e.hash for e in written)  # sealed into the chain like any other event


def test_a_series_page_load_is_one_series_viewed_event(db, users, make_case, login_as, clock):
    case = make_case("in_review", scans=["CT_small.dcm"])
    reviewer = login_as("reviewer")
    from review_portal.imaging.services import series_of_case

    [series] = series_of_case(db, case.id)
    base = f"/cases/{case.id}/series/{series.id}"
    # What the browser does for one page load: the page, its series JSON, then the slice.
    assert reviewer.get(base).status_code == 200
    assert reviewer.get(base + ".json").status_code == 200
    assert reviewer.get(base + "/slices/0.png").status_code == 200
    assert len(_events(db, "series.viewed", case_id=case.id)) == 1
    assert len(_events(db, "images.viewed", case_id=case.id, object_type="series")) == 1
