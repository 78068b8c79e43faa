"""De-identified export of a case (coordinators and administrators)."""
from __future__ import annotations

import io

from flask import Blueprint, abort, render_template, send_file
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms.validators import DataRequired

from review_portal.cases.permissions import is_staff
from review_portal.cases.services import get_case_for
from review_portal.privacy.export import export_case
from review_portal.uploads import scratch
from review_portal.web import actor, db, storage

bp = Blueprint("privacy", __name__)


class ExportForm(FlaskForm):
    include_documents = BooleanField("Include the documents (they are NOT de-identified; check them yourself)")
    purpose = BooleanField("This export is for teaching or research approved under our data-sharing rules",
                           validators=[DataRequired(message="Confirm the purpose.")])


@bp.route("/cases/<int:case_id>/export", methods=["GET", "POST"])
def export(case_id: int):
    if not is_staff(current_user):
        abort(403)
    case = get_case_for(db(), current_user, case_id)
    form = ExportForm()
    if not form.validate_on_submit():
        return render_template("privacy/export.html", case=case, form=form), 400 if form.is_submitted() else 200
    store = storage()
    with scratch(store) as workdir:
        dest = workdir / "export.zip"
        export_case(db(), store, case, dest, include_documents=bool(form.include_documents.data), **actor())
        data = dest.read_bytes()
    return send_file(io.BytesIO(data), mimetype="application/zip", as_attachment=True,
                     download_name=f"deidentified-case-{case.id}.zip", max_age=0)
