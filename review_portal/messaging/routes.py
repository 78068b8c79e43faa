from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user

from review_portal.deadlines import policy_from_config
from review_portal.uploads import UploadedFile
from review_portal.cases.services import get_case_for
from review_portal.messaging import services
from review_portal.messaging.forms import (
    FollowUpAnswerForm, FollowUpForm, InformationAnswerForm, InformationRequestForm, MessageForm,
)
from review_portal.web import actor, db, letterhead, storage
from review_portal.web import valid

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


def _spool(files, workdir: Path, prefix: str) -> list[UploadedFile]:
    spooled = []
    for n, f in enumerate(files):
        if f and f.filename:
            path = workdir / f"{prefix}{n}"
            f.save(path)
            spooled.append(UploadedFile(filename=f.filename, path=path))
    return spooled


@bp.post("/cases/<int:case_id>/information-requests/answer")
def answer_information(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(InformationAnswerForm())
    store = storage()
    workdir = store.workdir()
    try:
        result = services.answer_information_request(
            db(), store, case, answer=form.answer.data or "",
            documents=_spool(request.files.getlist(form.documents.name), workdir, "doc"),
            scans=_spool(request.files.getlist(form.scans.name), workdir, "scan"),
            policy=policy_from_config(current_app.config), **actor())
    finally:
        store.remove_workdir(workdir)
    flash(f"Answer sent. Case {case.reference} is back in review.", "success")
    if result.scan_report is not None:
        flash(f"Scans: {result.scan_report.summary}", "info")
    return _back(case)


@bp.post("/cases/<int:case_id>/follow-ups")
def ask_follow_up(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(FollowUpForm())
    services.ask_follow_up(db(), case, question=form.question.data,
                           max_questions=current_app.config["FOLLOW_UP_QUESTIONS_MAX"], **actor())
    flash("Question sent to the reviewer.", "success")
    return _back(case)


@bp.post("/cases/<int:case_id>/follow-ups/<int:follow_up_id>/answer")
def answer_follow_up(case_id: int, follow_up_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(FollowUpAnswerForm())
    services.answer_follow_up(db(), storage(), case, follow_up_id, answer=form.answer.data,
                              institution=letterhead(), **actor())
    flash("Answer sent to the referring physician.", "success")
    return _back(case)
