"""The user's API tokens page (Security → API tokens): a browser page, so session login and CSRF as usual.
The API itself (api.routes) never accepts the session."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from review_portal.api.forms import NewTokenForm, RevokeTokenForm
from review_portal.api.services import create_token, revoke_token, tokens_of
from review_portal.auth.services import check_password
from review_portal.errors import InvalidInput
from review_portal.web import actor, db

bp = Blueprint("api_tokens", __name__, url_prefix="/account/api-tokens")


def _page(form: NewTokenForm, *, new_token: str | None = None, status: int = 200):
    ctx = actor()
    return render_template("api/tokens.html", form=form, revoke_form=RevokeTokenForm(), new_token=new_token,
                           tokens=tokens_of(db(), current_user), now=ctx["now"]), status


@bp.get("")
def list_tokens():
    return _page(NewTokenForm())


@bp.post("")
def create():
    form = NewTokenForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    if not check_password(current_user, form.password.data):
        form.password.errors = ["Your password is not correct."]
        return _page(form, status=400)
    try:
        _token, raw = create_token(db(), name=form.name.data, scope=form.scope.data, days=int(form.days.data),
                                   **actor())
    except InvalidInput as exc:
        form.name.errors = [exc.message]
        return _page(form, status=400)
    # Rendered, not redirected: the token must never pass through the session or a flash message.
    return _page(NewTokenForm(formdata=None), new_token=raw)


@bp.post("/<int:token_id>/revoke")
def revoke(token_id: int):
    if not RevokeTokenForm().validate_on_submit():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    token = revoke_token(db(), token_id, **actor())
    flash(f"Token “{token.name}” ({token.prefix}…) is revoked; systems using it are refused from now on.", "success")
    return redirect(url_for("api_tokens.list_tokens"))
