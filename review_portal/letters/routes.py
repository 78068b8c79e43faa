from flask import Blueprint, flash, redirect, send_file, url_for
from flask_login import current_user

from review_portal.cases.forms import ConfirmForm
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput
from review_portal.letters.services import acknowledge_letter, get_letter_in_case, record_letter_download
from review_portal.web import actor, db, storage

bp = Blueprint("letters", __name__)


@bp.get("/cases/<int:case_id>/letters/<int:letter_id>.pdf")
def download_letter(case_id: int, letter_id: int):
    case = get_case_for(db(), current_user, case_id)
    letter = get_letter_in_case(db(), case.id, letter_id)
    record_letter_download(db(), case, letter, **actor())
    return send_file(storage().local_path(letter.blob_key), mimetype="application/pdf", as_attachment=True,
                     download_name=f"{case.reference}-letter-v{letter.version}.pdf", max_age=0)


@bp.post("/cases/<int:case_id>/acknowledge")
def acknowledge(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    if not ConfirmForm().validate():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    acknowledge_letter(db(), case, **actor())
    flash(f"Receipt acknowledged. Case {case.reference} is closed.", "success")
    return redirect(url_for("cases.show_case", case_id=case.id))
