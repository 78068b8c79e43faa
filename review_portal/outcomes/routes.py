from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from review_portal.audit.services import record
from review_portal.auth.models import Role
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput
from review_portal.opinions.services import opinion_for_case
from review_portal.outcomes import services
from review_portal.outcomes.forms import OutcomeForm
from review_portal.web import actor, db

bp = Blueprint("outcomes", __name__)


@bp.get("/outcomes")
def list_outcomes():
    if current_user.role != Role.REFERRING:
        abort(403)
    return render_template("outcomes/list.html", follow_ups=services.follow_ups_for(db(), current_user))


@bp.route("/cases/<int:case_id>/outcome", methods=["GET", "POST"])
def answer_outcome(case_id: int):
    if current_user.role != Role.REFERRING:
        abort(403)
    case = get_case_for(db(), current_user, case_id)
    follow_up = services.get_follow_up_for(db(), current_user, case)
    form = OutcomeForm(obj=follow_up if follow_up.is_answered else None)
    if form.is_submitted():
        if not form.validate():
            raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
        services.record_outcome(db(), follow_up, services.OutcomeAnswer(
            recommendation_followed=form.recommendation_followed.data or "",
            final_diagnosis=form.final_diagnosis.data or "",
            confirmed_opinion=form.confirmed_opinion.data or "",
            confirmed_by=form.confirmed_by.data or "",
            confirmed_by_note=form.confirmed_by_note.data or ""), **actor())
        flash(f"Thank you: the outcome of case {case.reference} is recorded.", "success")
        return redirect(url_for("outcomes.list_outcomes"))
    record(db(), action="outcome.viewed", case=case, object_type="outcome", object_id=follow_up.id, **actor())

    return render_template("outcomes/answer.html", case=case, follow_up=follow_up, form=form,
                           opinion=opinion_for_case(db(), case.id))
