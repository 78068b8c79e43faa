"""Login (password, then TOTP or a recovery code), first-login MFA enrolment, logout (here or everywhere),
the account's security page, password reset and invitations, and the administrator's user list."""
from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask import session as flask_session
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from review_portal.auth import mail, mfa, sessions, throttle
from review_portal.auth.forms import (
    ChangePasswordForm,
    CodeForm,
    ConfirmForm,
    EnrolForm,
    ForgotPasswordForm,
    InviteForm,
    LoginForm,
    LogoutForm,
    NewPasswordForm,
    PasswordOnlyForm,
    RoleForm,
)
from review_portal.auth.models import User
from review_portal.auth.permissions import admin_only
from review_portal.auth.services import (
    LoginThrottled,
    authenticate,
    change_password,
    change_role,
    check_password,
    end_sessions_of,
    finish_login,
    invite_user,
    link_refused,
    log_out,
    login_failed,
    logout_everywhere,
    redeem_token,
    request_password_reset,
    set_active,
    token_user,
)
from review_portal.errors import InvalidInput, NotFound, PermissionDenied
from review_portal.web import actor, db

bp = Blueprint("auth", __name__)

PENDING = "login_pending"
PENDING_FOR = timedelta(minutes=5)


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: an open redirect after login is a phishing aid.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target and not urlsplit(target).netloc:
        return target
    return url_for("workflow.list_cases")


def _ctx() -> dict:
    ctx = actor() | {"by": None}
    ctx["ua"] = (request.headers.get("User-Agent") or "")[:255]
    return ctx


def _pending_user(stage: str) -> User | None:
    """The user who passed the password step less than five minutes ago in this browser, for `stage`."""
    pending = flask_session.get(PENDING)
    if not pending or pending.get("stage") != stage:
        return None
    started = datetime.fromisoformat(pending["at"])
    if _ctx()["now"] - started > PENDING_FOR:
        flask_session.pop(PENDING, None)
        return None
    user = db().get(User, pending["uid"])
    return user if user is not None and user.active else None


def _complete_login(user: User, method: str):
    ctx = _ctx()
    target = (flask_session.get(PENDING) or {}).get("next")
    # A brand-new session at login: whatever id the browser had before (fixation) is thrown away.
    flask_session.clear()
    token = finish_login(db(), user, ip=ctx["ip"], user_agent=ctx["ua"], now=ctx["now"], method=method)
    flask_session["sid"] = token
    login_user(user)
    return _safe_next(target)


def _rotate_session(user: User, why: str) -> None:
    """New session id at a privilege change (password or second factor changed)."""
    ctx = _ctx()
    sessions.end_by_token(db(), flask_session.get("sid"), ctx["now"], why)
    flask_session["sid"] = sessions.start(db(), user, ip=ctx["ip"], user_agent=ctx["ua"], now=ctx["now"])


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("workflow.list_cases"))
    form = LoginForm()
    if form.validate_on_submit():
        ctx = _ctx()
        try:
            user = authenticate(db(), email=form.email.data, password=form.password.data, ip=ctx["ip"], now=ctx["now"])
        except LoginThrottled as exc:
            flash(exc.message, "error")
            return render_template("auth/login.html", form=form), 429
        if user is None:
            # The 401 rolls the request back; the failure count and its audit row survive (login_failed).
            flash("E-mail or password is not correct.", "error")
            return render_template("auth/login.html", form=form), 401
        pending = {"uid": user.id, "at": ctx["now"].isoformat(), "next": request.args.get("next")}
        if user.mfa_enabled:
            flask_session[PENDING] = pending | {"stage": "mfa"}
            return redirect(url_for("auth.login_mfa"))
        if user.mfa_required:
            flask_session[PENDING] = pending | {"stage": "enrol", "secret": mfa.new_secret()}
            return redirect(url_for("auth.login_enrol"))
        return redirect(_complete_login(user, "none (optional for this role)"))
    if request.method == "POST":
        return render_template("auth/login.html", form=form), 400
    if g.get("session_ended"):
        flash("Your session ended. Please log in again.", "info")
    return render_template("auth/login.html", form=form)


@bp.route("/login/mfa", methods=["GET", "POST"])
def login_mfa():
    user = _pending_user("mfa")
    if user is None:
        flash("Start again with your e-mail and password.", "info")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if form.validate_on_submit():
        ctx = _ctx()
        wait = throttle.blocked_for(db(), email=user.email, ip=ctx["ip"], now=ctx["now"])
        if wait is not None:
            flash(LoginThrottled(wait).message, "error")
            return render_template("auth/mfa.html", form=form), 429
        code = form.code.data.strip()
        if mfa.verify_totp(db(), user, code, ip=ctx["ip"], now=ctx["now"]):
            return redirect(_complete_login(user, "totp"))
        if mfa.use_recovery_code(db(), user, code, ip=ctx["ip"], now=ctx["now"]):
            flash(f"Recovery code accepted; {mfa.remaining_recovery_codes(db(), user)} left. "
                  "If your phone is lost, set up a new authenticator on your Security page.", "warning")
            return redirect(_complete_login(user, "recovery code"))
        login_failed(db(), email=user.email, user=user, ip=ctx["ip"], now=ctx["now"], why="wrong or reused second-factor code")
        flash("That code is not valid (or was already used). Type the current code from your authenticator app.", "error")
        return render_template("auth/mfa.html", form=form), 401
    return render_template("auth/mfa.html", form=form), 400 if request.method == "POST" else 200


def _enrol_page(secret: str, email: str, form, status: int = 200, moving: bool = False):
    uri = mfa.provisioning_uri(secret, email)
    return render_template("auth/enrol.html", form=form, qr=mfa.qr_svg_data_uri(uri), secret=secret,
                           moving=moving), status


@bp.route("/login/enrol", methods=["GET", "POST"])
def login_enrol():
    """Roles that must use a second factor set it up right after their first password login."""
    user = _pending_user("enrol")
    if user is None:
        flash("Start again with your e-mail and password.", "info")
        return redirect(url_for("auth.login"))
    secret = flask_session[PENDING]["secret"]
    form = CodeForm()
    if form.validate_on_submit():
        ctx = _ctx()
        try:
            codes = mfa.enrol(db(), user, secret, form.code.data, by=user, ip=ctx["ip"], now=ctx["now"])
        except InvalidInput as exc:
            flash(exc.message, "error")
            return _enrol_page(secret, user.email, form, 400)
        target = _complete_login(user, "totp (enrolled now)")
        return render_template("auth/recovery_codes.html", codes=codes, next_url=target)
    return _enrol_page(secret, user.email, form, 400 if request.method == "POST" else 200)


@bp.post("/logout")
def logout():
    form = LogoutForm()
    if form.validate_on_submit():
        ctx = actor()
        log_out(db(), flask_session.get("sid"), **ctx)
        logout_user()
        flask_session.clear()
        flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.post("/logout/everywhere")
def logout_all():
    if not ConfirmForm().validate_on_submit():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    ctx = actor()
    n = logout_everywhere(db(), ctx["by"], ip=ctx["ip"], now=ctx["now"])
    logout_user()
    flask_session.clear()
    flash(f"Logged out of {n} session{'s' if n != 1 else ''}, including this one.", "info")
    return redirect(url_for("auth.login"))


# --- The user's own security page -------------------------------------------------------------------

@bp.get("/account/security")
def account():
    user = current_user._get_current_object()
    return render_template(
        "auth/account.html", password_form=ChangePasswordForm(), confirm_form=ConfirmForm(),
        password_only=PasswordOnlyForm(), code_form=CodeForm(), live=sessions.live_sessions(db(), user),
        recovery_left=mfa.remaining_recovery_codes(db(), user) if user.mfa_enabled else 0,
    )


@bp.post("/account/password")
def account_password():
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs) or "Check the form.")
    ctx = actor()
    change_password(db(), ctx["by"], current=form.current_password.data, new=form.new_password.data,
                    ip=ctx["ip"], now=ctx["now"])
    _rotate_session(ctx["by"], "password changed")
    flash("Password changed. Every other session has been logged out.", "success")
    return redirect(url_for("auth.account"))


@bp.route("/account/mfa/enrol", methods=["GET", "POST"])
def account_enrol():
    user = current_user._get_current_object()
    form = EnrolForm()
    moving = user.mfa_enabled
    secret = flask_session.get("enrol_secret")
    if request.method == "GET" or not secret:
        secret = mfa.new_secret()
        flask_session["enrol_secret"] = secret
        return _enrol_page(secret, user.email, form, moving=moving)
    if not form.validate_on_submit():
        return _enrol_page(secret, user.email, form, 400, moving=moving)
    ctx = actor()
    try:
        codes = mfa.enrol(db(), user, secret, form.code.data, by=user, ip=ctx["ip"], now=ctx["now"],
                          password=form.password.data, current_code=form.current_code.data)
    except InvalidInput as exc:
        flash(exc.message, "error")
        return _enrol_page(secret, user.email, form, 400, moving=moving)
    flask_session.pop("enrol_secret", None)
    _rotate_session(user, "second factor changed")
    return render_template("auth/recovery_codes.html", codes=codes, next_url=url_for("auth.account"))


@bp.post("/account/mfa/disable")
def account_mfa_disable():
    user = current_user._get_current_object()
    form = PasswordOnlyForm()
    if user.mfa_required:
        raise PermissionDenied("Your role requires a second factor. Set up a new authenticator instead.")
    if not form.validate_on_submit() or not check_password(user, form.password.data):
        raise InvalidInput("Your password is not correct.")
    ctx = actor()
    mfa.reset(db(), user, reason="turned off by the user", **ctx)
    _rotate_session(user, "second factor changed")
    flash("Two-step login is off.", "info")
    return redirect(url_for("auth.account"))


@bp.post("/account/mfa/recovery-codes")
def account_recovery_codes():
    user = current_user._get_current_object()
    form = CodeForm()
    ctx = actor()
    if not user.mfa_enabled or not form.validate_on_submit() or not mfa.verify_totp(db(), user, form.code.data,
                                                                                       ip=ctx["ip"], now=ctx["now"]):
        raise InvalidInput("Type a current code from your authenticator app to make new recovery codes.")
    codes = mfa.renew_recovery_codes(db(), user, ip=ctx["ip"], now=ctx["now"])
    return render_template("auth/recovery_codes.html", codes=codes, next_url=url_for("auth.account"))


# --- Password reset and invitations --------------------------------------------------------------------

@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        ctx = _ctx()
        found = request_password_reset(db(), form.email.data, ip=ctx["ip"], now=ctx["now"])
        if found is not None:
            user, token = found
            mail.send(user.email, "Reset your Second Opinion Portal password",
                      mail.reset_body(url_for("auth.reset_password", token=token, _external=True)))
        # The same answer whether or not the account exists.
        flash("If an account exists for that address, we have sent it a link to choose a new password.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form), 400 if request.method == "POST" else 200


def _token_page(token: str, purpose: str, title: str):
    ctx = _ctx()
    if token_user(db(), token, purpose, now=ctx["now"]) is None:
        link_refused(db(), purpose, ip=ctx["ip"], now=ctx["now"])
        raise NotFound("This link has expired or was already used. Ask for a new one.")
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            user = redeem_token(db(), token, purpose, form.new_password.data, ip=ctx["ip"], now=ctx["now"])
        except InvalidInput as exc:
            flash(exc.message, "error")
            return render_template("auth/reset.html", form=form, title=title), 400
        logout_user()
        flask_session.clear()
        flash("Password set. Log in with it now." + (" You will then set up your authenticator app." if user.mfa_required and not user.mfa_enabled else ""), "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form, title=title), 400 if request.method == "POST" else 200


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    return _token_page(token, "reset", "Choose a new password")


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    return _token_page(token, "invite", "Welcome: choose your password")


# --- Administrators: accounts ---------------------------------------------------------------------------


@bp.get("/admin/users")
def users():
    admin_only()
    people = db().scalars(select(User).order_by(User.role, User.name)).all()
    return render_template("auth/users.html", people=people, form=InviteForm(), confirm_form=ConfirmForm(),
                           role_form=RoleForm(formdata=None))


@bp.post("/admin/users/invite")
def invite():
    admin_only()
    form = InviteForm()
    if not form.validate_on_submit():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs) or "Check the form.")
    ctx = actor()
    user, token = invite_user(db(), email=form.email.data, name=form.name.data.strip(), role=form.role.data,
                              specialty=form.specialty.data or None, credentials=(form.credentials.data or "").strip(),
                              institution=ctx["by"].institution, **ctx)
    mail.send(user.email, "Your Second Opinion Portal account",
              mail.invite_body(user.name, url_for("auth.accept_invitation", token=token, _external=True)))
    flash(f"Invitation sent to {user.email}.", "success")
    return redirect(url_for("auth.users"))


def _user_or_404(user_id: int) -> User:
    user = db().get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


@bp.post("/admin/users/<int:user_id>/reset-mfa")
def reset_user_mfa(user_id: int):
    admin_only()
    if not ConfirmForm().validate_on_submit():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    user = _user_or_404(user_id)
    ctx = actor()
    mfa.reset(db(), user, reason="reset by an administrator (lost authenticator)", **ctx)
    sessions.end_all(db(), user, ctx["now"], "second factor reset")
    flash(f"Second factor of {user.email} removed; they set up a new one at their next login.", "info")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<int:user_id>/end-sessions")
def end_user_sessions(user_id: int):
    admin_only()
    if not ConfirmForm().validate_on_submit():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    user = _user_or_404(user_id)
    ctx = actor()
    n = end_sessions_of(db(), user, **ctx)
    flash(f"{n} session(s) of {user.email} ended.", "info")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<int:user_id>/role")
def change_user_role(user_id: int):
    admin_only()
    form = RoleForm()
    if not form.validate_on_submit():
        raise InvalidInput("Choose a role (and a specialty for a reviewer).")
    user = _user_or_404(user_id)
    n = change_role(db(), user, form.role.data, specialty=form.specialty.data or None, **actor())
    flash(f"{user.email} is now {user.role_label}; {n} session(s) ended, they log in again with the new role.", "info")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<int:user_id>/deactivate")
def deactivate_user(user_id: int):
    admin_only()
    if not ConfirmForm().validate_on_submit():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    user = _user_or_404(user_id)
    n = set_active(db(), user, False, **actor())
    flash(f"{user.email} deactivated; {n} session(s) ended.", "info")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<int:user_id>/reactivate")
def reactivate_user(user_id: int):
    admin_only()
    if not ConfirmForm().validate_on_submit():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    user = _user_or_404(user_id)
    set_active(db(), user, True, **actor())
    flash(f"{user.email} can log in again.", "info")
    return redirect(url_for("auth.users"))
