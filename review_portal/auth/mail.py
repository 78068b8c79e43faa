"""Account e-mail (reset, invitation). They carry a link and nothing about any patient or case.

They use the same settings as notification e-mail (MAIL_ENABLED, MAIL_SERVER, MAIL_PORT, MAIL_USE_STARTTLS,
MAIL_USERNAME, MAIL_PASSWORD, MAIL_SENDER). With MAIL_ENABLED off they are kept in app.extensions["outbox"]
(tests, demo) and only the subject is logged. Unlike notifications they are sent at once and a failure is
an error: the person asking for a reset or sending an invitation must know the mail did not go.
"""
from __future__ import annotations

import smtplib
from email.message import EmailMessage

from flask import current_app


def send(to: str, subject: str, body: str) -> None:
    app = current_app
    cfg = app.config
    msg = EmailMessage()
    msg["From"] = cfg.get("MAIL_SENDER", "no-reply@second-opinion.example")
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    if not cfg.get("MAIL_ENABLED"):
        app.extensions.setdefault("outbox", []).append(msg)
        app.logger.info("mail not sent (MAIL_ENABLED is off): to=%s subject=%s", to, subject)
        return
    with smtplib.SMTP(cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]), timeout=float(cfg.get("MAIL_TIMEOUT_SECONDS", 10))) as smtp:
        if cfg.get("MAIL_USE_STARTTLS"):
            smtp.starttls()
        if cfg.get("MAIL_USERNAME"):
            smtp.login(cfg["MAIL_USERNAME"], cfg.get("MAIL_PASSWORD", ""))
        smtp.send_message(msg)


def reset_body(link: str) -> str:
    return (
        "Someone (hopefully you) asked to reset the password of your Second Opinion Portal account.\n\n"
        f"Choose a new password here within the next hour:\n{link}\n\n"
        "The link works once. If you did not ask for this, ignore this message; your password is unchanged.\n"
    )


def invite_body(name: str, link: str) -> str:
    return (
        f"Dear {name},\n\nAn account has been created for you on the Second Opinion Portal.\n\n"
        f"Choose your password here within three days:\n{link}\n\n"
        "The link works once. Reviewers, coordinators and administrators will also set up an authenticator app.\n"
    )
