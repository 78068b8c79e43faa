from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session as flask_session, url_for
from flask_login import current_user, login_user, logout_user

from review_portal.auth.forms import LoginForm, LogoutForm
from review_portal.auth.services import authenticate
from review_portal.web import actor, db

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: an open redirect after login is a phishing aid.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("cases.list_cases")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("cases.list_cases"))
    form = LoginForm()
    if form.validate_on_submit():
        ctx = actor() | {"by": None}
        user = authenticate(db(), email=form.email.data, password=form.password.data, ip=ctx["ip"], now=ctx["now"])
        if user is None:
            flash("E-mail or password is not correct.", "error")
            db().commit()  # keep the failed-login audit record
            return render_template("auth/login.html", form=form), 401
        flask_session.clear()  # a fresh session at login: no fixation
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout():
    form = LogoutForm()
    if form.validate_on_submit():
        logout_user()
        flask_session.clear()
        flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"))
