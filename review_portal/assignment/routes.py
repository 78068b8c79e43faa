from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from review_portal.assignment import services
from review_portal.deadlines import policy_from_config
from review_portal.assignment.forms import (
    AddReviewForm, CompleteReviewForm, DeclineForm, OutOfOfficeForm, ReassignForm, ReleaseLetterForm,
    ReviewerProfileForm,
)
from review_portal.assignment.models import READING_AREAS, Assignment, OutOfOffice, Review
from review_portal.audit.services import record
from review_portal.auth.models import Institution, Role, User
from review_portal.cases.forms import ConfirmForm
from review_portal.cases.models import CANCER_SITES
from review_portal.cases.permissions import can_reassign, is_staff
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput, NotFound
from review_portal.web import actor, db

bp = Blueprint("assignment", __name__)


def _require_staff():
    if not is_staff(current_user):
        abort(404)


def _valid(form):
    if not form.validate():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
    return form


def _review_in(case, review_id) -> Review:
    review = next((r for r in case.reviews if str(r.id) == str(review_id)), None) if review_id else case.lead_review
    if review is None:
        raise NotFound("No such review on this case.")
    return review


def _assignment_in(case, assignment_id: int) -> Assignment:
    assignment = db().get(Assignment, assignment_id)
    if assignment is None or assignment.case_id != case.id:
        raise NotFound("No such offer on this case.")
    return assignment


def _show(case):
    return redirect(url_for("cases.show_case", case_id=case.id))


@bp.route("/cases/<int:case_id>/reassign", methods=["GET", "POST"])
def reassign(case_id: int):
    _require_staff()
    case = get_case_for(db(), current_user, case_id)
    review = _review_in(case, request.values.get("review"))
    form = ReassignForm()
    load = services.open_case_counts(db())
    profiles = services.profiles_by_user(db())
    current = review.active_assignment
    form.reviewer_id.choices = [(0, "Choose…")] + [
        (r.id, f"{r.name} — {r.specialty_label}, {load.get(r.id, 0)} of {services.capacity_of(profiles.get(r.id))} open"
               + (" (declined)" if r.id in review.declined_reviewer_ids else ""))
        for r in services.eligible_reviewers(db(), review) if not current or r.id != current.reviewer_id
    ]
    if form.validate_on_submit():
        if not can_reassign(current_user, case):
            raise InvalidInput(f"Case {case.reference} is {case.status_label.lower()} and cannot be reassigned.")
        reviewer = db().get(User, form.reviewer_id.data)
        if reviewer is None or reviewer.role != Role.REVIEWER:
            raise InvalidInput("Choose a reviewer from the list.")
        services.reassign_review(db(), review, reviewer, note=form.note.data or "", **actor())
        flash(f"Case {case.reference} offered to {reviewer.name}.", "success")
        return _show(case)
    status = 400 if form.errors else 200
    return render_template("assignment/reassign.html", case=case, review=review, form=form), status


@bp.post("/cases/<int:case_id>/assignments/<int:assignment_id>/accept")
def accept_offer(case_id: int, assignment_id: int):
    case = get_case_for(db(), current_user, case_id)
    _valid(ConfirmForm())
    assignment = services.accept_offer(db(), _assignment_in(case, assignment_id), **actor())
    flash(f"You accepted the {assignment.review.review_type_label.lower()} of case {case.reference}.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/assignments/<int:assignment_id>/decline")
def decline_offer(case_id: int, assignment_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = _valid(DeclineForm())
    services.decline_offer(db(), _assignment_in(case, assignment_id), reason=form.reason.data,
                           note=form.note.data or "", **actor())
    flash(f"You declined case {case.reference}; it has been offered to someone else or passed to a coordinator.", "info")
    return redirect(url_for("cases.list_cases"))


@bp.post("/cases/<int:case_id>/reviews")
def add_review(case_id: int):
    _require_staff()
    case = get_case_for(db(), current_user, case_id)
    form = _valid(AddReviewForm())
    review = services.add_review(db(), case, form.review_type.data, policy=policy_from_config(current_app.config),
                                 **actor())
    who = review.reviewer.name if review.reviewer else "the triage queue (nobody eligible)"
    flash(f"{review.review_type_label} added to case {case.reference}: offered to {who}.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/reviews/<int:review_id>/complete")
def complete_review(case_id: int, review_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = _valid(CompleteReviewForm())
    services.complete_contributing_review(db(), _review_in(case, review_id), findings=form.findings.data, **actor())
    flash("Review completed; the lead reviewer has been told.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/release-letter")
def release_letter(case_id: int):
    _require_staff()
    case = get_case_for(db(), current_user, case_id)
    form = _valid(ReleaseLetterForm())
    services.release_letter(db(), case, why=form.why.data, **actor())
    flash("The opinion may now be signed without waiting for the other reviews.", "success")
    return _show(case)


@bp.get("/dashboard")
def dashboard():
    _require_staff()
    ctx = actor()
    data = services.dashboard(db(), policy=policy_from_config(current_app.config), now=ctx["now"])
    return render_template("assignment/dashboard.html", resend_form=ConfirmForm(), **data)


@bp.route("/availability", methods=["GET", "POST"])
def availability():
    if current_user.role != Role.REVIEWER:
        abort(404)
    form = OutOfOfficeForm()
    ctx = actor()
    if form.validate_on_submit():
        if form.ends_on.data < form.starts_on.data:
            raise InvalidInput("The last day away is before the first.")
        if form.ends_on.data - form.starts_on.data > timedelta(days=366):
            raise InvalidInput("Out-of-office periods are at most a year; add another period for longer.")
        period = OutOfOffice(user_id=current_user.id, starts_on=form.starts_on.data, ends_on=form.ends_on.data,
                             note=(form.note.data or "").strip())
        db().add(period)
        db().flush()
        record(db(), action="reviewer.out_of_office", object_type="out_of_office", object_id=period.id,
               detail=f"{period.starts_on} – {period.ends_on}", **ctx)
        flash("Out-of-office period saved: no new cases will be routed to you then.", "success")
        return redirect(url_for("assignment.availability"))
    periods = db().scalars(select(OutOfOffice).where(OutOfOffice.user_id == current_user.id,
                                                     OutOfOffice.ends_on >= ctx["now"].date())
                           .order_by(OutOfOffice.starts_on)).all()
    profile = services.profiles_by_user(db()).get(current_user.id)
    return render_template("assignment/availability.html", form=form, periods=periods, profile=profile,
                           capacity=services.capacity_of(profile), load=services.open_case_counts(db()).get(current_user.id, 0),
                           delete_form=ConfirmForm()), (400 if form.errors else 200)


@bp.post("/availability/<int:period_id>/delete")
def delete_absence(period_id: int):
    period = db().get(OutOfOffice, period_id)
    if period is None or period.user_id != current_user.id:
        raise NotFound("No such out-of-office period.")
    _valid(ConfirmForm())
    db().delete(period)
    record(db(), action="reviewer.out_of_office_removed", object_type="out_of_office", object_id=period_id, **actor())
    flash("Out-of-office period removed.", "info")
    return redirect(url_for("assignment.availability"))


# --- administrators: reviewer profiles ------------------------------------------------------------------

def _admin_only():
    if current_user.role != Role.ADMIN:
        abort(403)


@bp.get("/admin/reviewers")
def reviewer_profiles():
    _admin_only()
    return render_template("assignment/reviewers.html", reviewers=services.reviewer_overview(db()),
                           capacity_of=services.capacity_of, sites=CANCER_SITES, areas=READING_AREAS)


@bp.route("/admin/reviewers/<int:user_id>", methods=["GET", "POST"])
def edit_reviewer_profile(user_id: int):
    _admin_only()
    reviewer = db().get(User, user_id)
    if reviewer is None or reviewer.role != Role.REVIEWER:
        raise NotFound("No such reviewer.")
    profile = services.profiles_by_user(db()).get(reviewer.id)
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
                           load=services.open_case_counts(db()).get(reviewer.id, 0),
                           default_capacity=services.DEFAULT_CAPACITY), (400 if form.errors else 200)
