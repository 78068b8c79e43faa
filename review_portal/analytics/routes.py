"""The figures dashboard: coordinators and admins see the service, a reviewer sees their own work."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_login import current_user

from review_portal.analytics import services
from review_portal.analytics.report import render_report_pdf
from review_portal.audit.services import record
from review_portal.auth.models import Role
from review_portal.clock import utcnow
from review_portal.deadlines import policy_from_config
from review_portal.errors import NotFound
from review_portal.web import actor, db

bp = Blueprint("analytics", __name__)

ALLOWED = (Role.COORDINATOR, Role.ADMIN, Role.REVIEWER)


def _dashboard():
    if current_user.role not in ALLOWED:
        abort(403)
    now = utcnow()
    filters = services.parse_filters(request.args, user=current_user, now=now)
    return services.build_dashboard(db(), filters, policy=policy_from_config(current_app.config), now=now)


def _scope() -> str:
    return f"Own figures of {current_user.name}" if current_user.role == Role.REVIEWER else "Whole service"


@bp.get("/figures")
def show_figures():
    dashboard = _dashboard()
    options = services.filter_options(db()) if current_user.role != Role.REVIEWER else services.filter_options(db()) | {
        "reviewers": [], "specialties": []}
    return render_template("analytics/dashboard.html", dashboard=dashboard, options=options,
                           filters_text=services.describe_filters(dashboard.filters, db()), scope=_scope(),
                           args=dashboard.filters.query_args())


@bp.get("/figures/<key>.csv")
def export_figure_csv(key: str):
    dashboard = _dashboard()
    try:
        fig = dashboard.figure(key)
    except KeyError:
        raise NotFound("No such figure.") from None
    record(db(), action="analytics.exported", object_type="figure", object_id=key,
           detail=f"csv; {'; '.join(services.describe_filters(dashboard.filters, db()))}"[:2000], **actor())
    return Response(services.figure_csv(fig), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{key}-{dashboard.filters.end}.csv"'})


@bp.get("/figures/report.pdf")
def export_report_pdf():
    dashboard = _dashboard()
    words = services.describe_filters(dashboard.filters, db())
    pdf = render_report_pdf(dashboard, filters_text=words, institution=current_app.config["INSTITUTION"], scope=_scope())
    record(db(), action="analytics.exported", object_type="report", object_id="pdf",
           detail=f"pdf; {'; '.join(words)}"[:2000], **actor())
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="figures-{dashboard.filters.end}.pdf"'})
