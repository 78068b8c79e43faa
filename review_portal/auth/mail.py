"""Account e-mail (reset, invitation). They carry a link and nothing about any patient or case.

With MAIL_SERVER configured, messages go out over SMTP (STARTTLS unless MAIL_USE_TLS is False);
without it they are kept in app.extensions["outbox"] (tests, demo) and only the subject is logged.
"""
from __future__ import annotations

import smtplib
from email.message import EmailMessage

from flask import current_app


def send(to: str, subject: str, body: str) -> None:
    app = current_app
    msg = EmailMessage()
    msg["From"] = app.config.get("MAIL_FROM", "no-reply@second-opinion.example")
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    server = app.config.get("MAIL_SERVER")
    if not server:
        app.extensions.setdefault("outbox", []).append(msg)
        app.logger.info("mail not sent (no MAIL_SERVER): to=%s subject=%s", to, subject)
        return
    with smtplib.SMTP(server, int(app.config.get("MAIL_PORT", 25)), timeout=10) as smtp:
        if app.config.get("MAIL_USE_TLS", True):
            smtp.starttls()
        if app.config.get("MAIL_USERNAME"):
            smtp.login(app.config["MAIL_USERNAME"], app.config.get("MAIL_PASSWORD", ""))
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
