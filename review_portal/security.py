"""Deny by default, security headers, request ids.

Every endpoint needs a logged-in user (with a live server-side session, see auth.sessions) unless it
is on PUBLIC_ENDPOINTS. Adding a public page means adding it here, where a reviewer of the code sees it.
"""
from __future__ import annotations

import json
import re

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


# --------------------------------------------------------------------------------------------------------------
# Control characters are refused at the edge, before any view sees the request. PostgreSQL refuses NUL in text
# outright (a 500 deep inside a service), and no field of the portal has a use for the other C0 controls, DEL,
# the noncharacters U+FFFE/U+FFFF or lone surrogates (which no database encoding can store). Tab, line feed and
# carriage return stay allowed in values (multi-line text); names, file names and the path allow none of them.
_BAD_IN_VALUES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_BAD_IN_NAMES = re.compile("[\x00-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_BAD_IN_HEADERS = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # RFC 9110: field values may hold a tab, no other control
_BAD_RAW_QUERY = re.compile(b"[\x00-\x1f\x7f]")


def control_character(value: str, *, multiline: bool = True) -> str | None:
    """The first character of `value` the portal refuses to store, or None when the text is clean."""
    found = (_BAD_IN_VALUES if multiline else _BAD_IN_NAMES).search(value)
    return found.group() if found else None


def _describe(char: str) -> str:
    code = ord(char)
    kind = "a control character" if code < 32 or code == 127 else "a character that is not text"
    return f"{kind} (U+{code:04X})"


def _refuse(where: str, char: str, remedy: str = "remove it") -> None:
    from review_portal.errors import InvalidInput

    raise InvalidInput(f"{where} contains {_describe(char)}; {remedy}.")


def _shown(name: str) -> str:
    """A name for the message, with the offending characters made visible and the length bounded."""
    return _BAD_IN_NAMES.sub("?", name)[:80]


def _check(value: str, where: str, *, multiline: bool = True, remedy: str = "remove it") -> None:
    char = control_character(value, multiline=multiline)
    if char is not None:
        _refuse(where, char, remedy)


def _check_json(value, where: str, depth: int = 0) -> None:
    if depth > 64:
        return  # deeper documents are the view's problem (it refuses them); nothing here recurses without end
    if isinstance(value, str):
        _check(value, f'The JSON value at "{where}"' if where else "The JSON document")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_json(item, f"{where}[{n}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            _check(key, f'A JSON member name under "{where}"' if where else "A JSON member name", multiline=False)
            _check_json(item, path, depth + 1)


def refuse_control_characters():
    """before_request: a 400 naming the field, for control characters anywhere a request carries text to us
    (path, query, form fields and their names, uploaded file names, JSON bodies, header values)."""
    if request.endpoint is not None:  # an address that names no route stays a plain 404
        _check(request.path, "The address (URL path)", multiline=False)
    if _BAD_RAW_QUERY.search(request.query_string):
        _refuse("The query string", chr(_BAD_RAW_QUERY.search(request.query_string).group()[0]))
    for name, value in request.headers.items():
        found = _BAD_IN_HEADERS.search(value)
        if found:
            _refuse(f'The request header "{_shown(name)}"', found.group())
    for name, values in request.args.lists():
        _check(name, "A query parameter name", multiline=False)
        for value in values:
            _check(value, f'The query parameter "{_shown(name)}"')
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.is_json:
        try:
            document = json.loads(request.get_data())  # cached: the view reads the same bytes again
        except (ValueError, RecursionError):
            return None  # the view answers "not valid JSON"
        _check_json(document, "")
        return None
    for name, values in request.form.lists():
        _check(name, "A form field name", multiline=False)
        for value in values:
            _check(value, f'The field "{_shown(name)}"')
    for name, upload in request.files.items(multi=True):
        _check(name, "A form field name", multiline=False)
        filename = upload.filename or ""
        _check(filename, f'The file name "{_shown(filename)}"', multiline=False,
               remedy="rename the file and send it again")
    return None
