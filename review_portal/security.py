"""Deny by default, security headers, request ids.

Every endpoint needs a logged-in user (with a live server-side session, see auth.sessions) unless it
is on PUBLIC_ENDPOINTS. Adding a public page means adding it here, where a reviewer of the code sees it.
"""
from __future__ import annotations

from flask import abort, current_app, jsonify, redirect, request, url_for
from flask_login import current_user

from review_portal.web import wants_json

PUBLIC_ENDPOINTS = frozenset({
    "static",
    "health.healthz",
    "health.readyz",
    "auth.login",
    "auth.login_mfa",        # second step of login: needs the first step's pending state
    "auth.login_enrol",      # first-login MFA enrolment: same
    "auth.forgot_password",
    "auth.reset_password",   # needs a valid single-use token
    "auth.accept_invitation",
    "letters.verify_letter",  # answers only genuine / issue date / sha256; rate-limited per address
    "api.openapi_document",   # the API's description: no data, so integrators can read it before having a token
})
# Blueprints whose callers are programs, not browsers: refused with 401 JSON rather than sent to the login page.
API_BLUEPRINTS = frozenset({"dicomweb"})
# Blueprints that authenticate every request themselves, with bearer tokens (never the session cookie):
# their own before_request runs right after this one (the API's in api.routes, DICOMweb's in api.dicomweb).
SELF_AUTHENTICATING = frozenset({"api"})
# Public endpoints added by other parts (e.g. letter verification) are registered here by name.
EXTRA_PUBLIC_CONFIG_KEY = "PUBLIC_ENDPOINTS_EXTRA"


def is_public(endpoint: str | None) -> bool:
    if endpoint is None:
        return False
    return endpoint in PUBLIC_ENDPOINTS or endpoint in current_app.config.get(EXTRA_PUBLIC_CONFIG_KEY, ())


def require_login():
    if request.endpoint is None:
        return None  # no such route: the 404 handler answers
    if is_public(request.endpoint):
        return None
    if request.blueprint in SELF_AUTHENTICATING:
        return None
    if request.blueprint in API_BLUEPRINTS and request.headers.get("Authorization") is not None:
        return None  # a token was presented: the blueprint checks it (a DICOMweb client may also use the session)
    if not current_user.is_authenticated:
        if request.blueprint in API_BLUEPRINTS:
            # DICOMweb clients are programs (Accept: application/dicom+json, multipart/related...): a login
            # page would be read as a broken answer, so they get a plain 401 they can act on.
            return jsonify(error="Log in first.", status=401), 401
        if request.method == "GET" and not wants_json():
            return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))
        if wants_json():
            return jsonify(error="Log in first.", status=401), 401
        abort(401)
    return None


CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


def set_security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config.get("PRODUCTION"):
        # Browsers must never again talk to us over plain HTTP (HIPAA 164.312(e) transmission security).
        response.headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if not is_public(request.endpoint):
        # Patient data must not linger in shared caches, the browser's disk cache or the back-button cache of a
        # shared workstation: every answer that is not a public page or a static asset is no-store, whatever the
        # view set (send_file's "no-cache", an image's max-age). ETags stay: a conditional GET is still answered.
        response.headers["Cache-Control"] = "no-store"
        response.headers.pop("Expires", None)
    elif "Cache-Control" not in response.headers and request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"  # public pages (login...) are not worth caching either
    return response
