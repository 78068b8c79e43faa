"""Pages and actions on a case's reviews: accept, decline, reassign, add a review, complete it, release the letter."""
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from review_portal.assignment import routing
from review_portal.assignment.forms import (
    AddReviewForm,
    CompleteReviewForm,
    DeclineForm,
    ExtendDeadlineForm,
    ReassignForm,
    ReleaseLetterForm,
)
from review_portal.assignment.models import Assignment, Review
from review_portal.auth.models import Role, User
from review_portal.cases.disciplines import active_disciplines
from review_portal.cases.permissions import can_reassign, is_staff
from review_portal.cases.services import get_case_for
from review_portal.deadlines import policy_from_config
from review_portal.errors import IllegalTransition, InvalidInput, NotFound
from review_portal.web import ConfirmForm, actor, db, valid
from review_portal.workflow import assignments
from review_portal.workflow.dashboard import dashboard as dashboard_data

bp = Blueprint("reviews", __name__)


def _require_staff():
    if not is_staff(current_user):
        abort(403)


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
    return redirect(url_for("workflow.show_case", case_id=case.id))


@bp.route("/cases/<int:case_id>/reassign", methods=["GET", "POST"])
def reassign(case_id: int):
    """Choose any active reviewer: the fit of each is shown, an override needs a reason, a conflict is a hard stop."""
    _require_staff()
    case = get_case_for(db(), current_user, case_id)
    review = _review_in(case, request.values.get("review"))
    if not can_reassign(current_user, case) or not review.is_open:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; its reviews can no longer "
                                "be reassigned.")
    ctx = actor()
    fits = routing.reviewer_fits(db(), review, ctx["now"])
    form = ReassignForm()
    form.reviewer_id.choices = [(0, "Choose…")] + [
        (f.reviewer.id, f"{f.reviewer.name} — {f.reviewer.specialty_label}, {f.load} of {f.capacity} open"
                        + (f" (override: {'; '.join(f.concerns)})" if f.concerns else ""))
        for f in fits if f.conflict is None
    ]
    if form.validate_on_submit():
        reviewer = db().get(User, form.reviewer_id.data)
        if reviewer is None or reviewer.role != Role.REVIEWER:
            raise InvalidInput("Choose a reviewer from the list.")
        assignments.reassign_review(db(), review, reviewer, note=form.note.data or "",
                                    override_reason=form.override_reason.data or "", **ctx)
        flash(f"Case {case.reference} offered to {reviewer.name}.", "success")
        return _show(case)
    status = 400 if form.errors else 200
    return render_template("workflow/reassign.html", case=case, review=review, form=form, fits=fits,
                           extend_form=ExtendDeadlineForm()), status


@bp.post("/cases/<int:case_id>/reviews/<int:review_id>/extend")
def extend_deadline(case_id: int, review_id: int):
    _require_staff()
    case = get_case_for(db(), current_user, case_id)
    form = valid(ExtendDeadlineForm())
    review = assignments.extend_deadline(db(), _review_in(case, review_id), business_days=form.business_days.data,
                                         reason=form.reason.data, policy=policy_from_config(current_app.config),
                                         **actor())
    flash(f"{review.review_type_label} of {case.reference} now due {review.due_at:%d %b %Y %H:%M} UTC.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/assignments/<int:assignment_id>/accept")
def accept_offer(case_id: int, assignment_id: int):
    case = get_case_for(db(), current_user, case_id)
    valid(ConfirmForm())
    assignment = assignments.accept_offer(db(), _assignment_in(case, assignment_id), **actor())
    flash(f"You accepted the {assignment.review.review_type_label.lower()} of case {case.reference}.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/assignments/<int:assignment_id>/decline")
def decline_offer(case_id: int, assignment_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(DeclineForm())
    assignments.decline_offer(db(), _assignment_in(case, assignment_id), reason=form.reason.data,
                           note=form.note.data or "", **actor())
    flash(f"You declined case {case.reference}; it has been offered to someone else or passed to a coordinator.", "info")
    return redirect(url_for("workflow.list_cases"))


@bp.post("/cases/<int:case_id>/reviews")
def add_review(case_id: int):
    _require_staff()
    case = get_case_for(db(), current_user, case_id)
    form = valid(AddReviewForm().offer(active_disciplines(db())))
    review = assignments.add_review(db(), case, "", discipline=form.discipline.data,
                                    policy=policy_from_config(current_app.config), **actor())
    who = review.reviewer.name if review.reviewer else "the triage queue (nobody eligible)"
    flash(f"{review.review_type_label} added to case {case.reference}: offered to {who}.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/reviews/<int:review_id>/complete")
def complete_review(case_id: int, review_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(CompleteReviewForm())
    assignments.complete_contributing_review(db(), _review_in(case, review_id), findings=form.findings.data, **actor())
    flash("Review completed; the lead reviewer has been told.", "success")
    return _show(case)


@bp.post("/cases/<int:case_id>/release-letter")
def release_letter(case_id: int):
    _require_staff()
    case = get_case_for(db(), current_user, case_id)
    form = valid(ReleaseLetterForm())
    assignments.release_letter(db(), case, why=form.why.data, **actor())
    flash("The opinion may now be signed without waiting for the other reviews.", "success")
    return _show(case)


@bp.get("/dashboard")
def dashboard():
    _require_staff()
    ctx = actor()
    data = dashboard_data(db(), policy=policy_from_config(current_app.config), now=ctx["now"])
    return render_template("workflow/dashboard.html", resend_form=ConfirmForm(), **data)
