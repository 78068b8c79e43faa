from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from review_portal.audit.services import record_list_view
from review_portal.cases.questions import patient_questions_for
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput
from review_portal.imaging.services import series_of_case
from review_portal.opinions.forms import OpinionForm, SignForm, draft_version
from review_portal.opinions.measurements import measurements_for_page
from review_portal.opinions.services import DRAFT_FIELDS, OpinionDraft, case_for_opinion, opinion_for_case, save_draft
from review_portal.web import actor, db

bp = Blueprint("opinions", __name__)


def _case_for_reviewer(case_id: int):
    return case_for_opinion(db(), current_user, case_id)


def _save_from_request(case):
    form = OpinionForm()
    if not form.validate():
        raise InvalidInput("Please correct the opinion: " + "; ".join(
            f"{form[name].label.text}: {', '.join(errs)}" for name, errs in form.errors.items()))
    draft = OpinionDraft(**{name: form[name].data or "" for name in DRAFT_FIELDS})
    return save_draft(db(), case, draft, based_on_version=draft_version(form.version.data), **actor())


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
    # The page shows the patient, the question and the draft: a read of the case, once per window.
    record_list_view(db(), [case], what="opinion.viewed", detail="opinion page", **actor())
    form = OpinionForm(obj=opinion)
    form.version.data = str(opinion.version if opinion else 0)
    sign_form = SignForm()
    sign_form.version.data = form.version.data
    return render_template("opinions/edit.html", case=case, opinion=opinion, form=form, sign_form=sign_form,
                           series=series_of_case(db(), case.id),
                           measurements=measurements_for_page(db(), case, current_user),
                           patient_questions=patient_questions_for(db(), case.id))


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


