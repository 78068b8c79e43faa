"""The tumor-board agenda (/board) and a section's addendum, which may re-issue the letter."""
from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from review_portal.auth.models import Role
from review_portal.cases.services import get_case_for
from review_portal.errors import NotFound, PermissionDenied
from review_portal.opinions.section_forms import SectionAddendumForm
from review_portal.opinions.section_models import OpinionSection
from review_portal.web import actor, db, letterhead, page_arg, storage, valid
from review_portal.workflow.boards import board_agenda, sign_section_addendum

bp = Blueprint("board", __name__)


@bp.get("/board")
def show_board():
    """Coordinators, chairs and reviewers: the cases awaiting consensus that they may see."""
    if current_user.role not in (Role.COORDINATOR, Role.ADMIN, Role.REVIEWER):
        raise PermissionDenied("The tumor-board agenda is for the reviewing team.")
    page, per_page = page_arg(), current_app.config["PAGE_SIZE"]
    rows, total = board_agenda(db(), current_user, page=page, per_page=per_page, ip=actor()["ip"], now=actor()["now"])
    return render_template("workflow/board.html", rows=rows, total=total, page=page, per_page=per_page)


@bp.post("/cases/<int:case_id>/sections/<int:section_id>/addenda")
def add_section_addendum_route(case_id: int, section_id: int):
    case = get_case_for(db(), current_user, case_id)
    section = db().get(OpinionSection, section_id)
    if section is None or section.case_id != case.id:
        raise NotFound("No such section on this case.")
    form = valid(SectionAddendumForm())
    letter = sign_section_addendum(db(), storage(), case, section, form.text.data, reason=form.reason.data or "",
                                   password=form.password.data, attested=form.attest.data, institution=letterhead(),
                                   **actor())
    if letter is not None:
        flash(f"Section addendum signed. Letter version {letter.version} delivered; the chair is asked for a "
              "consensus addendum.", "success")
    else:
        flash("Section addendum signed.", "success")
    return redirect(url_for("workflow.show_case", case_id=case.id) + "#board")
