from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from review_portal.assignment.forms import ReassignForm
from review_portal.assignment.services import eligible_reviewers, open_case_counts, reassign_case
from review_portal.auth.models import Role, User
from review_portal.cases.permissions import can_reassign, is_staff
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput
from review_portal.web import actor, db

bp = Blueprint("assignment", __name__)


def _form_for(case) -> ReassignForm:
    form = ReassignForm()
    load = open_case_counts(db())
    current = case.active_assignment
    form.reviewer_id.choices = [(0, "Choose…")] + [
        (r.id, f"{r.name} — {r.specialty_label}, {load.get(r.id, 0)} open")
        for r in eligible_reviewers(db(), case) if not current or r.id != current.reviewer_id
    ]
    return form


@bp.route("/cases/<int:case_id>/reassign", methods=["GET", "POST"])
def reassign(case_id: int):
    if not is_staff(current_user):
        abort(404)
    case = get_case_for(db(), current_user, case_id)
    form = _form_for(case)
    if form.validate_on_submit():
        if not can_reassign(current_user, case):
            raise InvalidInput(f"Case {case.reference} is {case.status_label.lower()} and cannot be reassigned.")
        reviewer = db().get(User, form.reviewer_id.data)
        if reviewer is None or reviewer.role != Role.REVIEWER:
            raise InvalidInput("Choose a reviewer from the list.")
        reassign_case(db(), case, reviewer, note=form.note.data or "", **actor())
        flash(f"Case {case.reference} assigned to {reviewer.name}.", "success")
        return redirect(url_for("cases.show_case", case_id=case.id))
    status = 400 if form.errors else 200
    return render_template("assignment/reassign.html", case=case, form=form), status
