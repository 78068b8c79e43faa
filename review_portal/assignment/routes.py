
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from review_portal.assignment import routing, services
from review_portal.assignment.forms import (
    OutOfOfficeForm,
    ReviewerProfileForm,
)
from review_portal.assignment.models import READING_AREAS
from review_portal.auth.models import Institution, Role, User
from review_portal.auth.permissions import admin_only
from review_portal.cases.models import CANCER_SITES
from review_portal.errors import NotFound
from review_portal.web import ConfirmForm, actor, db, valid

bp = Blueprint("assignment", __name__)


@bp.route("/availability", methods=["GET", "POST"])
def availability():
    if current_user.role != Role.REVIEWER:
        abort(403)
    form = OutOfOfficeForm()
    ctx = actor()
    if form.validate_on_submit():
        services.add_absence(db(), starts_on=form.starts_on.data, ends_on=form.ends_on.data,
                             note=form.note.data or "", **ctx)
        flash("Out-of-office period saved: no new cases will be routed to you then.", "success")
        return redirect(url_for("assignment.availability"))
    periods = services.absences_of(db(), current_user, today=ctx["now"].date())
    profile = routing.profiles_by_user(db()).get(current_user.id)
    return render_template("assignment/availability.html", form=form, periods=periods, profile=profile,
                           capacity=routing.capacity_of(profile), load=routing.open_case_counts(db()).get(current_user.id, 0),
                           delete_form=ConfirmForm()), (400 if form.errors else 200)


@bp.post("/availability/<int:period_id>/delete")
def delete_absence(period_id: int):
    valid(ConfirmForm())
    services.remove_absence(db(), period_id, **actor())
    flash("Out-of-office period removed.", "info")
    return redirect(url_for("assignment.availability"))


# --- administrators: reviewer profiles ------------------------------------------------------------------


@bp.get("/admin/reviewers")
def reviewer_profiles():
    admin_only()
    return render_template("assignment/reviewers.html", reviewers=services.reviewer_overview(db()),
                           capacity_of=routing.capacity_of, sites=CANCER_SITES, areas=READING_AREAS)


@bp.route("/admin/reviewers/<int:user_id>", methods=["GET", "POST"])
def edit_reviewer_profile(user_id: int):
    admin_only()
    reviewer = db().get(User, user_id)
    if reviewer is None or reviewer.role != Role.REVIEWER:
        raise NotFound("No such reviewer.")
    profile = routing.profiles_by_user(db()).get(reviewer.id)
    form = ReviewerProfileForm(data=None if request.method == "POST" else {
        "specialty": reviewer.specialty or "", "sites": list(reviewer.sites or []),
        "reading_areas": list(profile.reading_areas or []) if profile else [],
        "institution_id": reviewer.institution_id or 0,
        "capacity": profile.capacity if profile else None,
    })
    form.institution_id.choices = [(0, "Choose…")] + [
        (i.id, i.name) for i in db().scalars(select(Institution).order_by(Institution.name))]
    if form.validate_on_submit():
        changes = services.update_reviewer_profile(
            db(), reviewer, specialty=form.specialty.data, sites=form.sites.data or [],
            reading_areas=form.reading_areas.data or [], institution_id=form.institution_id.data or None,
            capacity=form.capacity.data, **actor())
        flash(f"Profile of {reviewer.name} saved: {'; '.join(changes)}." if changes else "Nothing changed.",
              "success" if changes else "info")
        return redirect(url_for("assignment.reviewer_profiles"))
    return render_template("assignment/reviewer_profile.html", reviewer=reviewer, form=form,
                           load=routing.open_case_counts(db()).get(reviewer.id, 0),
                           default_capacity=routing.DEFAULT_CAPACITY), (400 if form.errors else 200)
