"""Who an API client is: the owner of the bearer token it presents, and nothing else.

/api/v1 never looks at the session cookie. That is what makes it safe without CSRF tokens: a forged
cross-site request carries the victim's cookie, but a browser never adds an Authorization header on
its own. DICOMweb (api.dicomweb._client_user) accepts a token too, when one is presented.
"""
from __future__ import annotations

from flask import g, request

from review_portal.api import errors
from review_portal.api.services import TokenRefused, authenticate
from review_portal.clock import utcnow
from review_portal.db import session

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer ...` header, "" for a malformed one, None when absent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return value.strip()[:200]


def authenticate_request():
    """Before-request: set the token's owner as the request's user, or answer 401/403 (JSON)."""
    raw = bearer_token()
    if raw is None:
        return errors.refusal(401, "Send your API token as 'Authorization: Bearer <token>'. "
                                   "Browser sessions are not accepted by the API.")
    scope = "read" if request.method in READ_METHODS else "write"
    try:
        user, token = authenticate(session(), raw, scope=scope, ip=request.remote_addr or "", now=utcnow(),
                                   detail=f"{request.method} {request.path[:300]}")
    except TokenRefused as exc:
        return errors.refusal(exc.status_code, exc.message, insufficient_scope=exc.status_code == 403)
    # flask-login's current_user reads g._login_user first: the token's owner becomes the request's user for
    # this request only (nothing is written to the session), so every permission check applies unchanged.
    g._login_user = user
    g.api_token = token
    return None


def token_user():
    """The user authenticated by a bearer token in this request, or None."""
    token = g.get("api_token")
    return token.user if token is not None else None
