"""Receives auth's credential-change announcements and tells the person (see auth.alerts)."""
from review_portal.auth.alerts import credentials_changed
from review_portal.notifications.services import notify


def tell_about_credentials(db, *, user, text: str, now, link: str) -> None:
    notify(db, user, kind="account_security", text=text, now=now, link=link)


def connect() -> None:
    """Called by the app factory; connecting twice is harmless (blinker keeps one entry per receiver)."""
    credentials_changed.connect(tell_about_credentials, weak=False)
