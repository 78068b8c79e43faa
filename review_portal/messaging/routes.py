
from flask import Blueprint, current_app, flash, redirect, url_for
from flask_login import current_user

from review_portal.cases.services import get_case_for
from review_portal.messaging import services
from review_portal.messaging.forms import (
    FollowUpForm,
    InformationRequestForm,
    MessageForm,
)
from review_portal.web import actor, db, valid

bp = Blueprint("messaging", __name__)


def _back(case):
    return redirect(url_for("workflow.show_case", case_id=case.id) + "#conversation")


@bp.post("/cases/<int:case_id>/messages")
def post_message(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(MessageForm())
    services.post_message(db(), case, body=form.body.data, **actor())
    flash("Message sent.", "success")
    return _back(case)


@bp.post("/cases/<int:case_id>/information-requests")
def request_information(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(InformationRequestForm())
    services.request_information(db(), case, items=form.items.data, detail=form.detail.data, **actor())
    flash(f"Information requested. Case {case.reference} is on hold until the referring physician answers.", "success")
    return _back(case)


@bp.post("/cases/<int:case_id>/follow-ups")
def ask_follow_up(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(FollowUpForm())
    services.ask_follow_up(db(), case, question=form.question.data,
                           max_questions=current_app.config["FOLLOW_UP_QUESTIONS_MAX"], **actor())
    flash("Question sent to the reviewer.", "success")
    return _back(case)


