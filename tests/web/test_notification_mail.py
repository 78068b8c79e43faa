"""Notification e-mails reach a real SMTP server (aiosmtpd, started here) and carry no patient details."""
import email
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller

from config import TestConfig
from review_portal import create_app
from review_portal.db import create_all, session as db_session


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inbox():
    box = Inbox()
    box.port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def app(tmp_path, inbox):
    """The shared fixtures (users, make_case, login_as) run against an app whose mail goes to the test server."""
    app = create_app(TestConfig, DATABASE_URL=f"sqlite:///{tmp_path / 'test.db'}", STORAGE_DIR=str(tmp_path / "store"),
                     MAIL_ENABLED=True, MAIL_SERVER="127.0.0.1", MAIL_PORT=inbox.port)
    create_all(app.extensions["db_engine"])
    yield app
    db_session.remove()
    app.extensions["db_engine"].dispose()


def by_recipient(box, address):
    return [m for rcpt, m in box.messages if address in rcpt]


def test_assignment_and_information_request_mails_arrive_without_patient_data(inbox, make_case, users, login_as, db):
    case = make_case("in_review", cancer_site="thoracic", patient_name="Zelda Secretname", patient_mrn="MRN-XYZ-991")
    offer_mail = by_recipient(inbox, users["reviewer"].email)
    assert len(offer_mail) == 1
    msg = offer_mail[0]
    assert msg["Subject"] == f"[{case.reference}] New assignment"
    assert msg["From"] == TestConfig.MAIL_SENDER
    body = msg.get_content()
    assert f"http://portal.test/cases/{case.id}" in body and case.reference in body

    reviewer = login_as("reviewer")
    response = reviewer.post(f"/cases/{case.id}/information-requests",
                             data={"items": ["records", "rescan"], "detail": "Send the PET-CT of Zelda Secretname."})
    assert response.status_code == 302
    to_referrer = by_recipient(inbox, users["referring"].email)
    assert [m["Subject"] for m in to_referrer] == [f"[{case.reference}] Information requested"]

    # A request that fails sends nothing: the mail leaves only after the commit.
    before = len(inbox.messages)
    assert reviewer.post(f"/cases/{case.id}/information-requests", data={"items": ["records"], "detail": "again"}).status_code == 409
    assert len(inbox.messages) == before

    for _, m in inbox.messages:
        text = m.as_string()
        assert "Zelda" not in text and "Secretname" not in text and "MRN-XYZ-991" not in text


def test_a_resent_letter_reaches_the_referrer_without_patient_data(inbox, make_case, users, login_as):
    case = make_case("letter_delivered", patient_name="Zelda Secretname", patient_mrn="MRN-XYZ-991")
    before = len(by_recipient(inbox, users["referring"].email))  # the first "letter ready"
    assert login_as("coordinator").post(f"/cases/{case.id}/letters/resend").status_code == 302
    mails = by_recipient(inbox, users["referring"].email)
    assert len(mails) == before + 1
    resent = mails[-1]
    assert resent["Subject"] == f"[{case.reference}] Letter waiting for you"
    text = resent.as_string()
    assert f"/cases/{case.id}" in text
    assert "Zelda" not in text and "Secretname" not in text and "MRN-XYZ-991" not in text
