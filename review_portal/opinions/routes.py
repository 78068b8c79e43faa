from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from review_portal.cases.permissions import can_file_opinion
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput, PermissionDenied
from review_portal.imaging.services import series_of_case
from review_portal.opinions.forms import AddendumForm, OpinionForm, SignForm
from review_portal.opinions.services import (
    DRAFT_FIELDS, OpinionDraft, SignatureRefused, opinion_for_case, save_draft, sign_addendum, sign_and_issue_letter,
)
from review_portal.web import actor, db, letterhead, storage

bp = Blueprint("opinions", __name__)


def _case_for_reviewer(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    if not can_file_opinion(current_user, case):
        raise PermissionDenied(f"Case {case.reference} is {case.status_label.lower()}; its opinion cannot be edited.")
    return case


def _version_arg(value) -> int:
    """The draft version the page was built from; a page opened before any draft existed sends 0."""
    value = (value or "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise InvalidInput("The form is damaged (unknown draft version). Reload the page.")
    return int(value)


def _save_from_request(case):
    form = OpinionForm()
    if not form.validate():
        raise InvalidInput("Please correct the opinion: " + "; ".join(
            f"{form[name].label.text}: {', '.join(errs)}" for name, errs in form.errors.items()))
    draft = OpinionDraft(**{name: form[name].data or "" for name in DRAFT_FIELDS})
    return save_draft(db(), case, draft, based_on_version=_version_arg(form.version.data), **actor())


@bp.route("/cases/<int:case_id>/opinion", methods=["GET", "POST"])
def edit_opinion(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    opinion = opinion_for_case(db(), case.id)
    if request.method == "GET" and opinion is not None and opinion.is_signed:
        return redirect(url_for("letters.letter_versions", case_id=case.id))
    case = _case_for_reviewer(case_id)
    if request.method == "POST":
        _save_from_request(case)
        flash("Draft saved.", "success")
        return redirect(url_for("opinions.edit_opinion", case_id=case.id))
    form = OpinionForm(obj=opinion)
    form.version.data = str(opinion.version if opinion else 0)
    sign_form = SignForm()
    sign_form.version.data = form.version.data
    return render_template("opinions/edit.html", case=case, opinion=opinion, form=form, sign_form=sign_form,
                           series=series_of_case(db(), case.id))


@bp.post("/cases/<int:case_id>/opinion/autosave")
def autosave_opinion(case_id: int):
    """The page saves the draft while the reviewer types; errors come back as JSON for the page to show."""
    case = _case_for_reviewer(case_id)
    opinion = _save_from_request(case)
    return jsonify(version=opinion.version, saved_at=opinion.updated_at.isoformat(),
                   saved_label=f"Draft saved {opinion.updated_at:%H:%M:%S} UTC")


@bp.get("/cases/<int:case_id>/opinion/token")
def opinion_token(case_id: int):
    """A fresh CSRF token, so a page kept open across an expired session can save again after re-login."""
    _case_for_reviewer(case_id)
    return jsonify(csrf_token=generate_csrf())


@bp.post("/cases/<int:case_id>/opinion/sign")
def sign(case_id: int):
    case = _case_for_reviewer(case_id)
    form = SignForm()
    if not form.validate():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
    based_on = _version_arg(form.version.data) if form.version.data else None
    try:
        letter = sign_and_issue_letter(db(), storage(), case, password=form.password.data, attested=form.attest.data,
                                       institution=letterhead(), based_on_version=based_on, **actor())
    except SignatureRefused:
        db().commit()  # nothing but the refusal's audit record has been written at this point
        raise
    if letter is not None:
        flash(f"Opinion signed. Letter version {letter.version} delivered to the referring physician.", "success")
    else:
        flash("Opinion signed. The letter is being prepared; this page shows when it is delivered.", "success")
    return redirect(url_for("workflow.show_case", case_id=case.id))


@bp.post("/cases/<int:case_id>/opinion/addenda")
def add_addendum(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = AddendumForm()
    if not form.validate():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
    try:
        letter = sign_addendum(db(), storage(), case, form.text.data, reason=form.reason.data or "",
                               password=form.password.data, attested=form.attest.data, institution=letterhead(), **actor())
    except SignatureRefused:
        db().commit()  # keep the refusal's audit record
        raise
    flash(f"Addendum signed. Letter version {letter.version} delivered to the referring physician.", "success")
    return redirect(url_for("letters.letter_versions", case_id=case.id))
