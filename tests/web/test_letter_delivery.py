"""Delivery: the coordinator sees letters nobody has acknowledged and can re-send them."""
from datetime import timedelta

from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.letters.services import letters_awaiting_acknowledgement
from review_portal.notifications.models import Notification
from tests.conftest import NOW


def _csrf_free_post(client, url):
    return client.post(url, data={})  # TestConfig disables CSRF; the CSRF test covers the token itself


def test_dashboard_lists_unacknowledged_letters_with_download_state(app, db, make_case, users, login_as):
    waiting = make_case("letter_delivered", patient_name="Zelda Secretname")
    make_case("acknowledged", cancer_site="thoracic")  # acknowledged: not listed
    rows = letters_awaiting_acknowledgement(db, now=NOW + timedelta(days=3, hours=2))
    assert [(r.case.id, r.letter.version, r.days_waiting, r.downloaded, r.resent_count) for r in rows] == [
        (waiting.id, 1, 3, False, 0)]

    referrer = login_as("referring")
    letter_id = rows[0].letter.id
    assert referrer.get(f"/cases/{waiting.id}/letters/{letter_id}.pdf").status_code == 200
    page = login_as("coordinator").get("/dashboard").get_data(as_text=True)
    section = page[page.index('id="awaiting-receipt"'):page.index('id="escalations"')]
    assert waiting.reference in section and "version 1" in section and "yes," in section
    assert f'action="/cases/{waiting.id}/letters/resend"' in section
    assert "Zelda" not in section  # the queue needs no patient name


def test_coordinator_resends_referrer_cannot_and_the_mail_has_no_patient_data(app, db, make_case, users, login_as):
    case = make_case("letter_delivered", patient_name="Zelda Secretname", patient_mrn="MRN-XYZ-991")
    sent = app.extensions["mailer"].sent
    before = len(sent)

    # The referring physician (who may see the case) and a reviewer cannot chase their own letter; strangers get 404.
    assert _csrf_free_post(login_as("referring"), f"/cases/{case.id}/letters/resend").status_code == 403
    assert _csrf_free_post(login_as("reviewer"), f"/cases/{case.id}/letters/resend").status_code == 403
    assert _csrf_free_post(login_as("other_referring"), f"/cases/{case.id}/letters/resend").status_code == 404
    assert len(sent) == before

    r = _csrf_free_post(login_as("coordinator"), f"/cases/{case.id}/letters/resend")
    assert r.status_code == 302 and r.headers["Location"].endswith("/dashboard#awaiting-receipt")
    [mail] = sent[before:]
    assert mail.to == users["referring"].email and case.reference in mail.subject
    text = mail.subject + mail.body
    for secret in ("Zelda", "Secretname", "MRN-XYZ-991", "1960"):
        assert secret not in text
    assert f"/cases/{case.id}" in mail.body and "version 1" in mail.body

    db.expire_all()
    note = db.scalar(select(Notification).where(Notification.user_id == users["referring"].id,
                                                Notification.kind == "letter_resent"))
    assert note is not None and "Zelda" not in note.text
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "letter.resent"))
    assert event.actor_id == users["coordinator"].id and event.case_id == case.id
    [row] = letters_awaiting_acknowledgement(db, now=NOW + timedelta(days=1))
    assert row.resent_count == 1 and row.last_resent_at is not None
    assert "1×, last" in login_as("coordinator").get("/dashboard").get_data(as_text=True)


def test_an_acknowledged_letter_cannot_be_resent(app, db, make_case, users, login_as):
    case = make_case("acknowledged")
    r = _csrf_free_post(login_as("coordinator"), f"/cases/{case.id}/letters/resend")
    assert r.status_code == 409 and b"no unacknowledged letter" in r.data
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "letter.resent")) is None
