"""Pages of the multidisciplinary opinion: a contributor's section (autosave, sign), a coordinator's waiver and
choice of chair, and the chair's record of each contributor's position."""
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from review_portal.audit.services import record_list_view
from review_portal.auth.models import User
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput, NotFound, PermissionDenied
from review_portal.imaging.services import series_of_case
from review_portal.opinions.forms import draft_version
from review_portal.opinions.section_forms import (
    ChairForm,
    PositionForm,
    SectionForm,
    SectionSignForm,
    WaiveSectionForm,
)
from review_portal.opinions.section_models import SECTION_FIELDS, OpinionSection
from review_portal.opinions.sections import (
    SECTION_CASE_STATUSES,
    is_section_author,
    kind_of_review,
    name_chair,
    record_position,
    review_in_case,
    save_section,
    section_of_review,
    sign_section,
    waive_section,
)
from review_portal.opinions.services import SignatureRefused
from review_portal.web import actor, db, storage, valid

bp = Blueprint("sections", __name__)


def _authored(case_id: int, review_id: int):
    case = get_case_for(db(), current_user, case_id)
    if case.status not in SECTION_CASE_STATUSES:
        raise PermissionDenied(f"Case {case.reference} is {case.status_label.lower()}; its sections can no longer "
                               "be written.")
    review = review_in_case(case, review_id)
    if not is_section_author(current_user, review):
        raise NotFound("No section of yours on this case.")
    return case, review


def _show(case):
    return redirect(url_for("workflow.show_case", case_id=case.id) + "#board")


def _save_from_request(case, review):
    form = SectionForm()
    if not form.validate():
        raise InvalidInput("Please correct the section: " + "; ".join(
            f"{form[name].label.text}: {', '.join(errs)}" for name, errs in form.errors.items()))
    section = section_of_review(db(), review.id)
    kind = section.kind if section is not None else kind_of_review(db(), review)
    data = {name: form[name].data or "" for name in SECTION_FIELDS[kind]}
    return save_section(db(), case, review, data, based_on_version=draft_version(form.version.data), **actor())


def _page(case, review, *, sign_form=None, sign_error="", status=200):
    section = section_of_review(db(), review.id)
    kind = section.kind if section is not None else kind_of_review(db(), review)
    form = SectionForm(data=dict(section.content or {}) if section is not None else None)
    form.version.data = str(section.version if section else 0)
    sign_form = sign_form or SectionSignForm()
    sign_form.version.data = form.version.data
    sign_form.password.data = ""
    return render_template("opinions/section.html", case=case, review=review, section=section, kind=kind, form=form,
                           fields=SECTION_FIELDS[kind], sign_form=sign_form, sign_error=sign_error,
                           series=series_of_case(db(), case.id)), status


@bp.route("/cases/<int:case_id>/sections/<int:review_id>", methods=["GET", "POST"])
def edit_section(case_id: int, review_id: int):
    case = get_case_for(db(), current_user, case_id)
    if request.method == "GET" and case.status not in SECTION_CASE_STATUSES:
        return _show(case)  # the case has moved on: its sections are read on the case page and in the letter
    case, review = _authored(case_id, review_id)
    section = section_of_review(db(), review.id)
    if request.method == "GET" and section is not None and section.status != "draft":
        return _show(case)
    if request.method == "POST":
        _save_from_request(case, review)
        flash("Section draft saved.", "success")
        return redirect(url_for("sections.edit_section", case_id=case.id, review_id=review.id))
    record_list_view(db(), [case], what="opinion.viewed", detail="section page", **actor())
    return _page(case, review)


@bp.post("/cases/<int:case_id>/sections/<int:review_id>/autosave")
def autosave_section(case_id: int, review_id: int):
    case, review = _authored(case_id, review_id)
    section = _save_from_request(case, review)
    return jsonify(version=section.version, saved_at=section.updated_at.isoformat(),
                   saved_label=f"Draft saved {section.updated_at:%H:%M:%S} UTC")


@bp.get("/cases/<int:case_id>/sections/<int:review_id>/token")
def section_token(case_id: int, review_id: int):
    _authored(case_id, review_id)
    return jsonify(csrf_token=generate_csrf())


@bp.post("/cases/<int:case_id>/sections/<int:review_id>/sign")
def sign_section_route(case_id: int, review_id: int):
    case, review = _authored(case_id, review_id)
    form = SectionSignForm()
    if not form.validate():
        return _page(case, review, sign_form=form, status=400)
    based_on = draft_version(form.version.data) if form.version.data else None
    try:
        sign_section(db(), case, review, password=form.password.data, attested=form.attest.data,
                     based_on_version=based_on, storage=storage(), **actor())
    except SignatureRefused as refused:
        form.password.errors = [refused.message]
        return _page(case, review, sign_form=form, status=400)
    except InvalidInput as problem:
        return _page(case, review, sign_form=form, sign_error=problem.message, status=400)
    flash("Section signed. The chair sees it beside the consensus.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/sections/<int:review_id>/waive")
def waive_section_route(case_id: int, review_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(WaiveSectionForm())
    waive_section(db(), case, review_in_case(case, review_id), reason=form.reason.data, **actor())
    flash("Section waived: the consensus may go without it.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/sections/<int:section_id>/position")
def record_position_route(case_id: int, section_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(PositionForm())
    section = db().get(OpinionSection, section_id)
    if section is None or section.case_id != case.id:
        raise NotFound("No such section on this case.")
    record_position(db(), case, section, position=form.position.data, dissent_text=form.dissent_text.data or "",
                    quote_section=bool(form.quote_section.data), **actor())
    flash("Position recorded.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/chair")
def name_chair_route(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = ChairForm()
    form.chair_id.choices = [(a.reviewer_id, a.reviewer.name) for a in case.assignments if a.is_taken]
    valid(form)
    chair = db().get(User, form.chair_id.data)
    name_chair(db(), case, chair, reason=form.reason.data or "", **actor())
    flash(f"{chair.name} chairs the consensus of {case.reference}.", "success")
    return _show(case)
