"""E-mail delivery after the transaction commits.

Services queue messages on the session (`queue`); they are sent only once the unit of work has
committed, so a rolled-back request never e-mails about something that did not happen. With
MAIL_ENABLED off (the default for the embedded run) messages are written to the log instead.
"""
from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import event

log = logging.getLogger("review_portal.mail")


@dataclass(frozen=True)
class Outgoing:
    to: str
    subject: str
    body: str


class LogMailer:
    """Used when e-mail is off: shows what would have been sent."""

    def __init__(self):
        self.sent: list[Outgoing] = []

    def send(self, messages: list[Outgoing]) -> None:
        for m in messages:
            self.sent.append(m)
            log.info("E-mail (not sent, MAIL_ENABLED is off) to %s: %s\n%s", m.to, m.subject, m.body)


class SmtpMailer:
    def __init__(self, *, host: str, port: int, sender: str, starttls: bool = False, username: str = "",
                 password: str = "", timeout: float = 10):
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.username, self.password, self.timeout = starttls, username, password, timeout

    def send(self, messages: list[Outgoing]) -> None:
        if not messages:
            return
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password)
                for m in messages:
                    msg = EmailMessage()
                    msg["From"] = self.sender
                    msg["To"] = m.to
                    msg["Subject"] = m.subject
                    msg.set_content(m.body)
                    smtp.send_message(msg)
        except (OSError, smtplib.SMTPException):
            # The change itself is committed and the in-portal notification exists; a mail outage must
            # not turn a successful action into an error page.
            log.exception("Could not send %d notification e-mail(s) via %s:%s", len(messages), self.host, self.port)


def mailer_from_config(config):
    if not config.get("MAIL_ENABLED"):
        return LogMailer()
    return SmtpMailer(host=config["MAIL_SERVER"], port=int(config["MAIL_PORT"]), sender=config["MAIL_SENDER"],
                      starttls=bool(config.get("MAIL_USE_STARTTLS")), username=config.get("MAIL_USERNAME", ""),
                      password=config.get("MAIL_PASSWORD", ""), timeout=float(config.get("MAIL_TIMEOUT_SECONDS", 10)))


def queue(db, message: Outgoing) -> None:
    db.info.setdefault("outbox", []).append(message)


_installed = False


def install(scoped_session) -> None:
    """Send the session's queued messages after each commit; forget them after a rollback."""
    global _installed
    if _installed:
        return
    _installed = True

    @event.listens_for(scoped_session, "after_commit")
    def _send_after_commit(sess):
        outbox = sess.info.pop("outbox", None)
        mailer = sess.info.get("mailer")
        if outbox and mailer is not None:
            mailer.send(outbox)

    @event.listens_for(scoped_session, "after_soft_rollback")
    def _drop_on_rollback(sess, previous_transaction):
        sess.info.pop("outbox", None)
