
from flask import Blueprint, flash, redirect, render_template, send_file, url_for
from flask_login import current_user

from review_portal.audit.services import record
from review_portal.auth.models import SPECIALTY_LABELS
from review_portal.auth.permissions import admin_only
from review_portal.cases import disciplines, services
from review_portal.cases.forms import CancelForm, CloseForm, DisciplineForm, RenameDisciplineForm, WithdrawForm, first_error
from review_portal.cases.models import Document
from review_portal.errors import InvalidInput, NotFound
from review_portal.web import ConfirmForm, actor, db, storage, valid

bp = Blueprint("cases", __name__)


@bp.get("/cases/<int:case_id>/documents/<int:document_id>")
def download_document(case_id: int, document_id: int):
    case = services.get_case_for(db(), current_user, case_id)
    doc = db().get(Document, document_id)
    if doc is None or doc.case_id != case.id:
        raise NotFound("No such document.")
    record(db(), action="document.downloaded", case=case, object_type="document", object_id=doc.id, **actor())
    # Always a download, with the type recorded when the content was checked: never rendered inline.
    # Hashed before the first byte is sent: a stored document that changed is refused, never delivered.
    return send_file(storage().open_verified(doc.sha256), mimetype=doc.content_type, as_attachment=True,
                     download_name=doc.filename, max_age=0)


@bp.post("/cases/<int:case_id>/withdraw")
def withdraw_case(case_id: int):
    case = services.get_case_for(db(), current_user, case_id)
    form = WithdrawForm()
    if not form.validate():
        raise InvalidInput(first_error(form))
    services.withdraw_case(db(), case, reason=form.reason.data, **actor())
    flash(f"Case {case.reference} withdrawn.", "info")
    return redirect(url_for("workflow.show_case", case_id=case.id))


@bp.post("/cases/<int:case_id>/cancel")
def cancel_case(case_id: int):
    case = services.get_case_for(db(), current_user, case_id)
    form = CancelForm()
    if not form.validate():
        raise InvalidInput(first_error(form))
    services.cancel_case(db(), case, reason=form.reason.data, **actor())
    flash(f"Case {case.reference} cancelled.", "info")
    return redirect(url_for("workflow.show_case", case_id=case.id))


@bp.post("/cases/<int:case_id>/close")
def close_case(case_id: int):
    case = services.get_case_for(db(), current_user, case_id)
    form = CloseForm()
    if not form.validate():
        raise InvalidInput(first_error(form))
    services.close_case(db(), case, **actor())
    flash(f"Case {case.reference} is closed.", "success")
    return redirect(url_for("workflow.show_case", case_id=case.id))


# --- administrators: the disciplines a referral can ask for ----------------------------------------------


@bp.route("/admin/disciplines", methods=["GET", "POST"])
def list_disciplines():
    admin_only()
    form = DisciplineForm()
    if form.validate_on_submit():
        added = disciplines.add_discipline(db(), key=form.key.data, label=form.label.data,
                                           specialty=form.specialty.data, **actor())
        flash(f"Discipline {added.label} added.", "success")
        return redirect(url_for("cases.list_disciplines"))
    return render_template("cases/disciplines.html", disciplines=disciplines.all_disciplines(db()), form=form,
                           rename_form=RenameDisciplineForm(), toggle_form=ConfirmForm(),
                           specialties=SPECIALTY_LABELS), (400 if form.errors else 200)


@bp.post("/admin/disciplines/<int:discipline_id>/rename")
def rename_discipline(discipline_id: int):
    admin_only()
    form = valid(RenameDisciplineForm())
    renamed = disciplines.rename_discipline(db(), discipline_id, label=form.label.data, **actor())
    flash(f"Discipline renamed to {renamed.label}.", "success")
    return redirect(url_for("cases.list_disciplines"))


@bp.post("/admin/disciplines/<int:discipline_id>/deactivate")
def deactivate_discipline(discipline_id: int):
    return _set_active(discipline_id, False)


@bp.post("/admin/disciplines/<int:discipline_id>/activate")
def activate_discipline(discipline_id: int):
    return _set_active(discipline_id, True)


def _set_active(discipline_id: int, active: bool):
    admin_only()
    valid(ConfirmForm())
    changed = disciplines.set_discipline_active(db(), discipline_id, active=active, **actor())
    flash(f"{changed.label} is {'offered to referrers again' if changed.active else 'no longer offered to referrers'}.",
          "info")
    return redirect(url_for("cases.list_disciplines"))
