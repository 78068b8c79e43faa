"""Closing gaps of issue 6: every image read is audited without flooding the trail (ASVS 4.0.3 V8.3.5, HIPAA
164.312(b)), people are told when their credentials change (V2.2.3, V2.5.5), and a change of role or a
deactivation ends every session of that person (ASVS 5.0 V7.4.2; OWASP session cheat sheet: renew the session
at any privilege level change)."""
from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import select, text

from review_portal.api.services import create_token
from review_portal.audit.chain import seal
from review_portal.audit.models import AuditEvent
from review_portal.auth.models import User, UserSession
from review_portal.clock import utcnow
from review_portal.imaging.services import series_of_case
from review_portal.notifications.models import Notification
from tests.conftest import PASSWORD, _allow_code_reuse, login_client
from tests.imaging_helpers import synth_series

SLICES = 24


def events(db, action, **where):
    db.expire_all()
    q = select(AuditEvent).where(AuditEvent.action == action)
    for k, v in where.items():
        q = q.where(getattr(AuditEvent, k) == v)
    return db.scalars(q.order_by(AuditEvent.id)).all()


@pytest.fixture
def ct_case(make_case, login_as, tmp_path, db):
    case = make_case("in_review")  # the reviewer has accepted: they may mark key images
    files = [(open(p, "rb"), p.name) for p in synth_series(tmp_path / "s", SLICES)]
    r = login_as("referring").post(f"/cases/{case.id}/scans", data={"scans": files}, headers={"X-Requested-With": "fetch"})
    assert r.status_code == 200 and r.json["ingest"]["accepted"] == SLICES, r.json
    [series] = series_of_case(db, case.id)
    return case, series


def _scroll(c, case, series, **params):
    base = f"/cases/{case.id}/series/{series.id}"
    for i in range(SLICES):
        assert c.get(f"{base}/slices/{i}.jpg", query_string=params).status_code == 200
    assert c.get(f"{base}/slices/{SLICES // 2}.png").status_code == 200
    assert c.get(f"{base}/thumbnail.png").status_code == 200


def test_a_whole_scroll_is_one_images_viewed_event_per_user_series_and_session(app, ct_case, login_as, db, users,
                                                                                 clock):
    case, series = ct_case
    reviewer = login_as("reviewer")
    _scroll(reviewer, case, series)
    _scroll(reviewer, case, series, wc=40, ww=400)
    # The browser revalidating a cached slice (304) is a read too, still covered by the same event.
    first = reviewer.get(f"/cases/{case.id}/series/{series.id}/slices/0.jpg")
    assert reviewer.get(f"/cases/{case.id}/series/{series.id}/slices/0.jpg",
                        headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    # The periodic sealer (audit.sealer) chains it within AUDIT_SEAL_INTERVAL_SECONDS; here, one seal by hand.
    seal(app.extensions["db_engine"])
    [event] = events(db, "images.viewed", object_type="series")
    assert (event.actor_email, event.case_id, event.object_id, event.patient_mrn) == (
        users["reviewer"].email, case.id, str(series.id), "MRN-1")
    assert "first read: slice 0" in event.detail and event.hash is not None  # sealed into the chain

    # Another login session of the same reviewer, and another person, each get their own event.
    login_as("reviewer").get(f"/cases/{case.id}/series/{series.id}/slices/3.jpg")
    login_as("coordinator").get(f"/cases/{case.id}/series/{series.id}/thumbnail.png")
    viewed = events(db, "images.viewed", object_type="series")
    assert [e.actor_email for e in viewed] == [users["reviewer"].email, users["reviewer"].email, users["coordinator"].email]
    assert viewed[0].detail.split(";")[0] != viewed[1].detail.split(";")[0]  # different sessions

    # Still reading 8 minutes later: covered by the first event. 16 minutes later (past the 15-minute window):
    # a new event, so the trail shows the reading went on.
    def reviewer_events():
        return len(events(db, "images.viewed", object_type="series", actor_email=users["reviewer"].email))

    clock.advance(minutes=8)
    assert reviewer.get(f"/cases/{case.id}/series/{series.id}/slices/5.jpg").status_code == 200
    assert reviewer_events() == 2
    clock.advance(minutes=8)
    assert reviewer.get(f"/cases/{case.id}/series/{series.id}/slices/6.jpg").status_code == 200
    assert reviewer_events() == 3
    assert reviewer.get(f"/cases/{case.id}/series/{series.id}/slices/7.jpg").status_code == 200
    assert reviewer_events() == 3


def test_key_image_png_is_an_audited_read_and_a_refused_one_is_not_a_view(ct_case, login_as, db, users):
    case, series = ct_case
    reviewer = login_as("reviewer")
    r = reviewer.post(f"/cases/{case.id}/key-images", data={"series_id": series.id, "slice_index": 2,
                                                             "window_center": 40, "window_width": 400, "caption": "x"},
                      headers={"X-Requested-With": "fetch"})
    assert r.status_code == 200, r.json
    png = r.json["key_image"]["image_url"]
    assert login_as("coordinator").get(png).status_code == 200
    [event] = events(db, "images.viewed", object_type="series", actor_email=users["coordinator"].email)
    assert "key image" in event.detail and event.case_id == case.id
    # A stranger's attempt is an access.denied, not an images.viewed.
    assert login_as("other_referring").get(png).status_code == 404
    assert not events(db, "images.viewed", actor_email=users["other_referring"].email)


def test_dicomweb_retrieve_is_one_event_naming_the_study_and_case(ct_case, login_as, db, users):
    case, series = ct_case
    study_uid = series.study.study_instance_uid
    r = login_as("reviewer").get(f"/dicomweb/cases/{case.id}/studies/{study_uid}", buffered=True)
    assert r.status_code == 200 and r.data.count(b"Content-Type: application/dicom") == SLICES
    [event] = events(db, "dicomweb.retrieved")
    assert (event.case_id, event.case_ref, event.patient_mrn, event.actor_email) == (
        case.id, case.reference, "MRN-1", users["reviewer"].email)
    assert f"study {study_uid}" in event.detail
    # Metadata and rendered frames are always audited too, each naming what was read.
    sop = series.instances[0].sop_instance_uid
    base = f"/dicomweb/cases/{case.id}/studies/{study_uid}/series/{series.series_instance_uid}"
    c = login_as("coordinator")
    assert c.get(f"{base}/metadata").status_code == 200
    assert c.get(f"{base}/instances/{sop}/rendered", headers={"Accept": "image/png"}).status_code == 200
    assert series.series_instance_uid in events(db, "dicomweb.metadata")[-1].detail
    assert sop in events(db, "dicomweb.rendered")[-1].detail


# --- Telling people about changes to their credentials ---------------------------------------------------------

def _alerts(app, db, user):
    db.expire_all()
    notes = db.scalars(select(Notification).where(Notification.user_id == user.id,
                                                  Notification.kind == "account_security").order_by(Notification.id)).all()
    mails = [m for m in app.extensions["mailer"].sent if m.to == user.email]
    for m in mails:  # the e-mail says what changed, never a patient detail or the new secret
        assert "Test Patient" not in m.body and "MRN-1" not in m.body and PASSWORD not in m.body
    return [n.text for n in notes], mails


def _enrol(app, c, user) -> list[str]:
    assert c.get("/account/mfa/enrol").status_code == 200
    with c.session_transaction() as s:
        secret = s["enrol_secret"]
    r = c.post("/account/mfa/enrol", data={"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200 and b"recovery codes" in r.data
    return secret


def test_each_credential_change_notifies_the_owner_in_the_portal_and_by_e_mail(app, db, users, login_as, make_case):
    make_case("assigned")
    referring = users["referring"]
    c = login_as("referring")
    r = c.post("/account/password", data={"current_password": PASSWORD, "new_password": "a-new-long-passphrase",
                                          "confirm": "a-new-long-passphrase"})
    assert r.status_code == 302
    texts, mails = _alerts(app, db, referring)
    assert len(texts) == len(mails) == 1 and "password was changed" in texts[0] and "127.0.0.1" in texts[0]
    assert mails[0].subject == "Change to your account security" and "/account/security" in mails[0].body

    secret = _enrol(app, c, referring)
    assert "turned on" in _alerts(app, db, referring)[0][-1]

    _allow_code_reuse(app, referring.email)
    r = c.post("/account/mfa/recovery-codes", data={"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200
    assert "New recovery codes" in _alerts(app, db, referring)[0][-1]

    assert c.post("/account/mfa/disable", data={"password": "a-new-long-passphrase"}).status_code == 302
    assert "turned off" in _alerts(app, db, referring)[0][-1]

    assert c.post("/logout/everywhere").status_code == 302
    texts, mails = _alerts(app, db, referring)
    assert "logged out" in texts[-1] and len(texts) == len(mails) == 5

    # An administrator resetting a reviewer's lost authenticator: the reviewer hears of it.
    assert login_as("admin").post(f"/admin/users/{users['reviewer'].id}/reset-mfa").status_code == 302
    [text_] = _alerts(app, db, users["reviewer"])[0]
    assert "reset" in text_ and "by an administrator" in text_


def test_a_refused_change_tells_nobody(app, db, users, login_as):
    c = login_as("referring")
    r = c.post("/account/password", data={"current_password": "wrong-password-here", "new_password": "a-new-long-passphrase",
                                          "confirm": "a-new-long-passphrase"})
    assert r.status_code == 400
    assert _alerts(app, db, users["referring"]) == ([], [])


# --- Privilege changes end every session -------------------------------------------------------------------------

def _live(db, user):
    db.expire_all()
    return db.scalars(select(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))).all()


def test_changing_a_role_ends_every_session_of_that_person(app, db, users, login_as):
    laptop, phone = login_as("reviewer"), login_as("reviewer")
    assert laptop.get("/cases").status_code == phone.get("/cases").status_code == 200
    admin = login_as("admin")
    assert admin.post(f"/admin/users/{users['reviewer'].id}/role", data={"role": "coordinator"}).status_code == 302
    for c in (laptop, phone):
        r = c.get("/cases")
        assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert _live(db, users["reviewer"]) == []
    db.expire_all()
    assert db.get(User, users["reviewer"].id).role == "coordinator"
    [event] = events(db, "user.role_changed")
    assert event.detail.startswith("reviewer -> coordinator; sessions ended=2")
    assert "role was changed from Reviewer to Coordinator" in _alerts(app, db, users["reviewer"])[0][-1]
    # They log in again and now see what the new role sees.
    again = app.test_client()
    login_client(app, again, users["reviewer"].email)
    assert again.get("/dashboard").status_code == 200  # the coordinators' queue; a reviewer gets 404 there
    # A reviewer needs a specialty; the administrator cannot demote themselves; others cannot do this at all.
    assert admin.post(f"/admin/users/{users['coordinator'].id}/role", data={"role": "reviewer"}).status_code == 400
    assert admin.post(f"/admin/users/{users['admin'].id}/role", data={"role": "referring"}).status_code == 403
    assert login_as("coordinator").post(f"/admin/users/{users['referring'].id}/role",
                                        data={"role": "admin"}).status_code == 403
    db.expire_all()
    assert db.get(User, users["referring"].id).role == "referring"


def test_deactivating_ends_sessions_and_refuses_login_and_api_tokens(app, db, users, login_as):
    referring = users["referring"]
    raw = create_token(db, name="his", scope="read", days=7, by=referring, ip="", now=utcnow())[1]
    db.commit()
    browser = login_as("referring")
    assert browser.get("/cases").status_code == 200
    admin = login_as("admin")
    assert admin.post(f"/admin/users/{referring.id}/deactivate").status_code == 302
    assert browser.get("/cases").status_code == 302 and _live(db, referring) == []
    assert login_client(app, app.test_client(), referring.email).status_code == 401
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    assert events(db, "user.deactivated")[-1].object_id == str(referring.id)
    assert admin.post(f"/admin/users/{users['admin'].id}/deactivate").status_code == 403
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "(deactivated)" in page and f"/admin/users/{referring.id}/reactivate" in page
    assert admin.post(f"/admin/users/{referring.id}/reactivate").status_code == 302
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(text("DELETE FROM login_throttles"))  # the refused login above counted as a failure
    assert login_client(app, app.test_client(), referring.email).status_code == 302
