
from flask import Blueprint, flash, redirect, send_file, url_for
from flask_login import current_user

from review_portal.audit.services import record
from review_portal.cases import services
from review_portal.cases.forms import CancelForm, CloseForm, WithdrawForm, first_error
from review_portal.cases.models import Document
from review_portal.errors import InvalidInput, NotFound
from review_portal.web import actor, db, storage

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
