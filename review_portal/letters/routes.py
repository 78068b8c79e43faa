import json

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from review_portal.audit.services import record, record_list_view
from review_portal.cases.permissions import can_acknowledge
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput, NotFound
from review_portal.letters import fhir
from review_portal.letters.services import (
    acknowledge_letter,
    get_letter_in_case,
    letters_for_case,
    record_letter_download,
    resend_letter,
)
from review_portal.letters.services import (
    verify_letter as lookup_code,
)
from review_portal.letters.summary import can_write_summary, signed_summaries_for_case
from review_portal.opinions.forms import AddendumForm
from review_portal.opinions.permissions import can_add_addendum
from review_portal.opinions.services import opinion_for_case
from review_portal.web import ConfirmForm, actor, db, storage

bp = Blueprint("letters", __name__)


@bp.get("/cases/<int:case_id>/letters/<int:letter_id>.pdf")
def download_letter(case_id: int, letter_id: int):
    case = get_case_for(db(), current_user, case_id)
    letter = get_letter_in_case(db(), case.id, letter_id)
    record_letter_download(db(), case, letter, **actor())
    # Hashed before the first byte is sent: a stored letter that changed is refused (StoredFileCorrupt), never delivered.
    return send_file(storage().open_verified(letter.blob_key), mimetype="application/pdf", as_attachment=True,
                     download_name=f"{case.reference}-letter-v{letter.version}.pdf", max_age=0)


@bp.get("/cases/<int:case_id>/letters")
def letter_versions(case_id: int):
    """The signed opinion, its addenda and every letter version, newest first."""
    case = get_case_for(db(), current_user, case_id)
    opinion = opinion_for_case(db(), case.id)
    if opinion is None or not opinion.is_signed:
        raise NotFound("No letter has been issued for this case yet.")
    letters = letters_for_case(db(), case.id)
    record_list_view(db(), [case], what="letters.viewed", detail="letters and signed opinion", **actor())
    addendum_form = AddendumForm() if can_add_addendum(current_user, case, opinion) else None
    return render_template("letters/versions.html", case=case, opinion=opinion, letters=letters,
                           addendum_form=addendum_form, summaries=signed_summaries_for_case(db(), case.id),
                           may_write_summary=can_write_summary(db(), current_user, case),
                           ack_form=ConfirmForm() if can_acknowledge(current_user, case) else None,
                           confirm_form=ConfirmForm())


@bp.post("/cases/<int:case_id>/acknowledge")
def acknowledge(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    if not ConfirmForm().validate():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    acknowledge_letter(db(), case, **actor())
    flash(f"Receipt acknowledged for case {case.reference}.", "success")
    return redirect(url_for("workflow.show_case", case_id=case.id))


@bp.post("/cases/<int:case_id>/letters/resend")
def resend(case_id: int):
    """A coordinator chases an unacknowledged letter: the referring physician is notified again."""
    case = get_case_for(db(), current_user, case_id)
    if not ConfirmForm().validate():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    letter = resend_letter(db(), case, **actor())
    flash(f"Letter version {letter.version} of case {case.reference} re-sent to {case.referring.name}.", "success")
    return redirect(url_for("reviews.dashboard", _anchor="awaiting-receipt"))


def _fhir_response(resource: dict, name: str):
    return Response(json.dumps(resource, indent=1), mimetype="application/fhir+json",
                    headers={"Content-Disposition": f'attachment; filename="{name}.json"'})


def _signed(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    opinion = opinion_for_case(db(), case.id)
    letters = letters_for_case(db(), case.id)
    if opinion is None or not opinion.is_signed or not letters:
        raise NotFound("The opinion on this case is not signed yet.")
    return case, opinion, letters[0]


@bp.get("/cases/<int:case_id>/fhir/DiagnosticReport.json")
def fhir_diagnostic_report(case_id: int):
    case, opinion, letter = _signed(case_id)
    resource = fhir.diagnostic_report(case, opinion, letter, storage().read_verified(letter.blob_key))
    record(db(), action="letter.fhir_exported", object_type="letter", object_id=letter.id, case=case,
           detail="DiagnosticReport", **actor())
    return _fhir_response(resource, f"{case.reference}-DiagnosticReport")


@bp.get("/cases/<int:case_id>/fhir/Task.json")
def fhir_task(case_id: int):
    case, opinion, letter = _signed(case_id)
    resource = fhir.review_task(case, opinion, letter)
    record(db(), action="letter.fhir_exported", object_type="letter", object_id=letter.id, case=case,
           detail="Task", **actor())
    return _fhir_response(resource, f"{case.reference}-Task")


@bp.get("/verify")
def verify_letter():
    """Public: is this a letter we issued? Answers only genuine or not, the issue date and the PDF's sha256."""
    code = request.args.get("code", "")
    result = None
    if code:
        limit = current_app.config.get("VERIFY_RATE_LIMIT", 30)
        # Counted by every worker and host together (review_portal.ratelimit), not per process.
        if not current_app.extensions["rate_limiter"].allow("verify", request.remote_addr or "", limit, 600.0):
            abort(429, description="Too many checks from your address. Wait ten minutes and try again.")
        result = lookup_code(db(), code)
    response = current_app.make_response(render_template("letters/verify.html", code=code[:64], checked=bool(code),
                                                          result=result))
    response.headers["X-Robots-Tag"] = "noindex"
    return response
