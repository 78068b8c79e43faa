"""Is this the same patient? The banner on the upload result, the case page and the viewer; the referrer's or a
coordinator's decision; and, after a wrong study was removed, who saw its images (administrators)."""
from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from review_portal.audit.services import record
from review_portal.auth.permissions import admin_only
from review_portal.cases.models import Case
from review_portal.cases.services import get_case_for
from review_portal.errors import NotFound
from review_portal.imaging import identity_services
from review_portal.imaging.identity_forms import IdentityDecisionForm
from review_portal.web import actor, db, storage, valid
from review_portal.workflow.identity import (
    image_views_of_removed_study,
    remove_wrong_study,
    removed_study,
)

bp = Blueprint("identity", __name__)


@bp.app_template_global("identity_banner")
def identity_banner(case) -> dict:
    """What templates/workflow/_identity_banner.html shows: open questions per study, and the decision form."""
    warnings = identity_services.identity_warnings(db(), case.id)
    return {"case": case, "warnings": warnings,
            "can_resolve": bool(warnings) and identity_services.can_resolve_identity(current_user, case),
            "form": IdentityDecisionForm(formdata=None)}


@bp.post("/cases/<int:case_id>/studies/<int:study_id>/identity")
def resolve_identity(case_id: int, study_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(IdentityDecisionForm())
    if form.decision.data == "wrong_study":
        remove_wrong_study(db(), storage(), case, study_id, reason=form.reason.data,
                           references=current_app.extensions["blob_references"],
                           referenced=current_app.extensions["blob_referenced"], **actor())
        flash("The study was removed from the case and its images deleted. The administrators have been told.",
              "warning")
    else:
        identity_services.confirm_same_patient(db(), case, study_id, reason=form.reason.data, **actor())
        flash("Recorded: the study is this patient's.", "success")
    return redirect(url_for("workflow.show_case", case_id=case.id))


@bp.get("/cases/<int:case_id>/identity/<int:study_id>/views")
def removed_study_views(case_id: int, study_id: int):
    """Administrators: the privacy incident of a removed study, and every audited read of its images."""
    admin_only()
    case = db().get(Case, case_id)
    if case is None:
        raise NotFound("No such case.")
    incident = removed_study(db(), case, study_id)
    events = image_views_of_removed_study(db(), case, study_id)
    record(db(), action="identity.incident_viewed", case=case, object_type="study", object_id=study_id,
           detail=f"{len(events)} read(s) listed", **actor())
    return render_template("workflow/identity_views.html", case=case, incident=incident, events=events)
