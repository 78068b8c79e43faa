"""Helpers shared by the blueprints' thin views."""
from __future__ import annotations

from flask import current_app, request, url_for
from flask_login import current_user

from review_portal.clock import utcnow
from review_portal.db import session


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
