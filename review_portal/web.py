"""Helpers shared by the blueprints' thin views."""
from __future__ import annotations

from flask import current_app, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from review_portal.clock import utcnow
from review_portal.db import session
from review_portal.errors import InvalidInput


def actor() -> dict:
    """Who is acting, from where, when: the keyword arguments every service takes."""
    return {"by": current_user._get_current_object(), "ip": request.remote_addr or "", "now": utcnow()}


def db():
    return session()


def storage():
    return current_app.extensions["storage"]


def page_arg() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


def letterhead() -> dict:
    """The letterhead from config, plus the public address where a recipient checks a letter."""
    return dict(current_app.config["INSTITUTION"], verification_url=url_for("letters.verify_letter", _external=True))


class ConfirmForm(FlaskForm):
    """A button that changes state: carries only the CSRF token."""


def valid(form):
    """The form if it validates; otherwise a 400 that lists what is wrong (the page keeps nothing half-done)."""
    if not form.validate():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
    return form


def wants_json() -> bool:
    """The caller is a program or our own fetch() code: answer errors as JSON, not as a page."""
    if request.path.startswith("/api/"):
        return True
    return request.accept_mimetypes.best == "application/json" or is_fetch()


def is_fetch() -> bool:
    return request.headers.get("X-Requested-With") == "fetch"
