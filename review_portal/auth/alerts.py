"""Telling a person that their credentials changed (ASVS 2.2.3, 2.5.5): a notification in the portal and
the same text by e-mail, so a change they did not make does not go unnoticed. Texts never carry patient data
and never the new secret itself (no password, code or recovery code), only what changed, when and from where.
"""
from __future__ import annotations

from datetime import datetime

from blinker import Namespace
from sqlalchemy.orm import Session

SECURITY_PAGE = "/account/security"

# Auth knows nothing of notifications: it announces the change, and the notifications domain (connected
# by the app factory) tells the person in the portal and by e-mail, in the same transaction.
signals = Namespace()
credentials_changed = signals.signal("credentials-changed")


def credential_changed(db: Session, user, what: str, *, ip: str, now: datetime, by=None) -> None:
    """`what` completes "Your ..." style sentences, e.g. "Your password was changed"."""
    if by is None or getattr(by, "id", None) == user.id:
        where = f" from address {ip}" if ip else ""
        text = (f"{what} on {now:%d %b %Y at %H:%M} UTC{where}. If this was not you, reset your password now "
                "and tell your portal administrator.")
    else:
        text = (f"{what} by an administrator on {now:%d %b %Y at %H:%M} UTC. If you did not expect this, "
                "ask your portal administrator.")
    receivers = credentials_changed.send(db, user=user, text=text, now=now, link=SECURITY_PAGE)
    if not receivers:  # a change nobody is told about is the failure this module exists to prevent
        raise RuntimeError("No receiver for auth.alerts.credentials_changed; the app factory connects one.")
