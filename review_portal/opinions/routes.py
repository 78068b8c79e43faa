from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from review_portal.cases.permissions import can_file_opinion
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput, PermissionDenied
from review_portal.imaging.services import series_of_case
from review_portal.opinions.forms import OpinionForm, SignForm
from review_portal.opinions.services import OpinionDraft, opinion_for_case, save_draft, sign_and_issue_letter
from review_portal.web import actor, db, storage

bp = Blueprint("opinions", __name__)


def _case_for_reviewer(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    if not can_file_opinion(current_user, case):
        raise PermissionDenied(f"Case {case.reference} is {case.status_label.lower()}; its opinion cannot be edited.")
    return case


@bp.route("/cases/<int:case_id>/opinion", methods=["GET", "POST"])
def edit_opinion(case_id: int):
    case = _case_for_reviewer(case_id)
    opinion = opinion_for_case(db(), case.id)
    form = OpinionForm(obj=opinion) if request.method == "GET" else OpinionForm()
    if request.method == "GET":
        form.version.data = opinion.version if opinion else ""
    if request.method == "POST":
        if not form.validate():
            raise InvalidInput("Please correct the opinion: " + "; ".join(
                f"{form[name].label.text}: {', '.join(errs)}" for name, errs in form.errors.items()))
        based_on = int(form.version.data) if (form.version.data or "").isdigit() else None
        draft = OpinionDraft(**{name: form[name].data or "" for name in OpinionDraft.__dataclass_fields__})
        opinion = save_draft(db(), case, draft, based_on_version=based_on, **actor())
        flash("Draft saved.", "success")
        return redirect(url_for("opinions.edit_opinion", case_id=case.id))
    return render_template("opinions/edit.html", case=case, opinion=opinion, form=form, sign_form=SignForm(),
                           series=series_of_case(db(), case.id))


@bp.post("/cases/<int:case_id>/opinion/sign")
def sign(case_id: int):
    case = _case_for_reviewer(case_id)
    form = SignForm()
    if not form.validate():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
    letter = sign_and_issue_letter(db(), storage(), case, password=form.password.data, attested=form.attest.data,
                                   institution=current_app.config["INSTITUTION"], **actor())
    if letter is not None:
        flash(f"Opinion signed. Letter version {letter.version} delivered to the referring physician.", "success")
    else:
        flash("Opinion signed. The letter is being prepared; this page shows when it is delivered.", "success")
    return redirect(url_for("cases.show_case", case_id=case.id))
