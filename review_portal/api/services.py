"""Personal API tokens: create (shown once), revoke, authenticate. Services flush, never commit.

A token acts as its owner: every API view loads objects through the same permission-checked loaders
as the portal (cases.services.get_case_for), so a token never sees more than its user would.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.api.models import SCOPES, ApiToken
from review_portal.audit.services import record
from review_portal.auth.models import User
from review_portal.errors import InvalidInput, NotFound

TOKEN_PREFIX = "sop_"  # nosec B105: a public marker that makes leaked tokens easy to spot, not a secret
LIFETIMES_DAYS = (7, 30, 90, 365)
MAX_LIVE_TOKENS = 20


class TokenRefused(Exception):
    """Missing, unknown, expired or revoked token (401), or a scope that does not cover the request (403)."""

    def __init__(self, message: str, status_code: int = 401, token: ApiToken | None = None):
        super().__init__(message)
        self.message, self.status_code, self.token = message, status_code, token


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


def create_token(db: Session, *, name: str, scope: str, days: int, by: User, ip: str, now: datetime
                 ) -> tuple[ApiToken, str]:
    """Return (row, plaintext). The plaintext exists only in this return value: show it once."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Name the token after the system that will use it (e.g. 'Riverside EHR').")
    if scope not in SCOPES:
        raise InvalidInput("Choose read or write.")
    if days not in LIFETIMES_DAYS:
        raise InvalidInput("Choose how long the token lasts: " + ", ".join(f"{d} days" for d in LIFETIMES_DAYS) + ".")
    if len(live_tokens(db, by, now)) >= MAX_LIVE_TOKENS:
        raise InvalidInput(f"You already have {MAX_LIVE_TOKENS} live tokens. Revoke one you no longer use first.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    token = ApiToken(user_id=by.id, name=name[:100], scope=scope, token_sha256=hash_token(raw),
                     prefix=raw[:len(TOKEN_PREFIX) + 6], created_at=now, expires_at=now + timedelta(days=days))
    db.add(token)
    db.flush()
    record(db, action="api_token.created", by=by, ip=ip, now=now, object_type="api_token", object_id=token.id,
           detail=f"name={token.name!r}; scope={scope}; expires={token.expires_at.date().isoformat()}; "
                  f"prefix={token.prefix}")
    return token, raw


def revoke_token(db: Session, token_id: int, *, by: User, ip: str, now: datetime) -> ApiToken:
    token = db.get(ApiToken, token_id)
    if token is None or token.user_id != by.id:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = now
        record(db, action="api_token.revoked", by=by, ip=ip, now=now, object_type="api_token", object_id=token.id,
               detail=f"name={token.name!r}; prefix={token.prefix}")
    return token


def tokens_of(db: Session, user: User) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())))


def live_tokens(db: Session, user: User, now: datetime) -> list[ApiToken]:
    return [t for t in tokens_of(db, user) if t.is_live(now)]


def authenticate(db: Session, raw: str, *, scope: str, ip: str, now: datetime, detail: str) -> tuple[User, ApiToken]:
    """The owner of a live token whose scope covers `scope`; every use and every refusal is audited."""
    token = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == hash_token(raw))) if raw else None
    # The lookup is by hash (a database index); compare again in constant time for good measure.
    if token is None or not hmac.compare_digest(token.token_sha256, hash_token(raw)):
        _refused(db, None, None, ip, now, detail, "unknown token")
        raise TokenRefused("The API token is not valid. Create a new one under Security → API tokens.")
    user = token.user
    if token.revoked_at is not None:
        _refused(db, user, token, ip, now, detail, "revoked")
        raise TokenRefused("This API token has been revoked.", token=token)
    if now >= token.expires_at:
        _refused(db, user, token, ip, now, detail, "expired")
        raise TokenRefused(f"This API token expired on {token.expires_at.date().isoformat()}.", token=token)
    if not user.active:
        _refused(db, user, token, ip, now, detail, "account inactive")
        raise TokenRefused("The account this token belongs to is no longer active.", token=token)
    if not token.allows(scope):
        _refused(db, user, token, ip, now, detail, f"scope {token.scope} cannot {scope}")
        raise TokenRefused("This token is read-only; create a token with write scope to change anything.", 403, token)
    token.last_used_at, token.last_used_ip = now, (ip or "")[:64]
    # Survives a failed request too: a use is a use, whatever the answer was.
    record(db, action="api_token.used", by=user, ip=ip, now=now, object_type="api_token", object_id=token.id,
           detail=detail, survive_rollback=True)
    return user, token


def _refused(db, user, token, ip, now, detail, why) -> None:
    record(db, action="api_token.refused", by=user, ip=ip, now=now, object_type="api_token",
           object_id=getattr(token, "id", ""), outcome="denied", detail=f"{why}: {detail}", survive_rollback=True)
