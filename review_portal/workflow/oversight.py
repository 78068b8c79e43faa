"""Audit log search and accounting of disclosures (administrators), emergency access and its review."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from review_portal.audit.forms import ActivitySearchForm, AuditSearchForm, DisclosuresForm, ReviewForm
from review_portal.audit.services import AuditQuery, disclosures_csv, record, search
from review_portal.auth.permissions import admin_only
from review_portal.cases import emergency
from review_portal.cases.forms import EmergencyAccessForm
from review_portal.cases.models import Case, EmergencyAccess
from review_portal.cases.permissions import is_staff
from review_portal.errors import InvalidInput, NotFound
from review_portal.web import actor, db, page_arg
from review_portal.workflow.activity import ActivityQuery, search_activity

bp = Blueprint("audit", __name__)
PER_PAGE = 100



def _day(d, end: bool = False):
    if d is None:
        return None
    start = datetime.combine(d, time.min, tzinfo=timezone.utc)
    return start + timedelta(days=1) if end else start


@bp.get("/admin/audit")
def search_log():
    admin_only()
    form = AuditSearchForm(request.args)
    events = []
    page = page_arg()
    searched = any(request.args.get(k) for k in ("patient", "user", "case", "action", "outcome", "since", "until", "flagged"))
    if form.validate():
        q = AuditQuery(patient=form.patient.data or "", user=form.user.data or "", case=form.case.data or "",
                       action=form.action.data or "", outcome=form.outcome.data or "", since=_day(form.since.data),
                       until=_day(form.until.data, end=True), flagged_only=bool(form.flagged.data))
        events = search(db(), q, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
        if searched:
            # Looking at who saw what is itself a look at patient data.
            record(db(), action="audit.searched", object_type="audit", detail=request.query_string.decode()[:500], **actor())
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("audit/search.html", form=form, events=events, page=page, per_page=PER_PAGE, args=args,
                           grants=emergency.unreviewed(db()), review_form=ReviewForm(),
                           disclosures_form=DisclosuresForm(request.args))


@bp.get("/activity")
def activity():
    """Coordinators' read-only activity search, in plain words, over the cases they may open today."""
    if not is_staff(current_user):
        abort(403)
    form = ActivitySearchForm(request.args)
    page = page_arg()
    lines = []
    if form.validate():
        q = ActivityQuery(case=form.case.data or "", person=form.person.data or "", since=_day(form.since.data),
                          until=_day(form.until.data, end=True))
        lines = search_activity(db(), q, limit=PER_PAGE, offset=(page - 1) * PER_PAGE, **actor())
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("audit/activity.html", form=form, lines=lines, page=page, per_page=PER_PAGE, args=args)


@bp.get("/admin/audit/disclosures.csv")
def disclosures():
    admin_only()
    form = DisclosuresForm(request.args)
    if not form.validate():
        raise InvalidInput("Give the patient's MRN (and optionally a date range) for the accounting of disclosures.")
    mrn = form.patient_mrn.data.strip()
    body = disclosures_csv(db(), patient_mrn=mrn, since=_day(form.since.data), until=_day(form.until.data, end=True))
    record(db(), action="audit.disclosures_exported", object_type="patient", object_id=mrn[:64],
           detail=f"rows={body.count(chr(10)) - 1}", **actor())
    safe = "".join(ch for ch in mrn if ch.isalnum() or ch in "-_")[:40] or "patient"
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="disclosures-{safe}.csv"'})


@bp.post("/admin/emergency/<int:grant_id>/review")
def review_emergency(grant_id: int):
    admin_only()
    form = ReviewForm()
    if not form.validate_on_submit():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    grant = db().get(EmergencyAccess, grant_id)
    if grant is None:
        raise NotFound("No such emergency access.")
    emergency.mark_reviewed(db(), grant, note=form.note.data or "", **actor())
    flash(f"Emergency access to {grant.case_ref} marked reviewed.", "success")
    return redirect(url_for("audit.search_log"))


@bp.post("/cases/<int:case_id>/emergency-access")
def break_glass(case_id: int):
    if not is_staff(current_user):
        abort(403)
    case = db().get(Case, case_id)
    if case is None:
        raise NotFound("No such case.")
    form = EmergencyAccessForm()
    if not form.validate_on_submit():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs) or "State the reason.")
    emergency.break_glass(db(), case, reason=form.reason.data, **actor())
    flash(f"Emergency access to {case.reference} granted for {emergency.grant_length().seconds // 60} minutes. "
          "It is recorded and will be reviewed.", "warning")
    return redirect(url_for("workflow.show_case", case_id=case.id))
