from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from review_portal.errors import InvalidInput, NotFound
from review_portal.notifications import services
from review_portal.web import ConfirmForm, actor, db

bp = Blueprint("notifications", __name__)


@bp.get("/notifications")
def list_notifications():
    return render_template("notifications/list.html", notifications=services.notifications_for(db(), current_user),
                           form=ConfirmForm())


@bp.get("/notifications/<int:notification_id>")
def open_notification(notification_id: int):
    note = services.open_notification(db(), current_user, notification_id, now=actor()["now"])
    if note is None:
        raise NotFound("No such notification.")
    # Only our own relative paths are ever stored, so this cannot redirect off-site.
    return redirect(note.link if note.link.startswith("/") and not note.link.startswith("//")
                    else url_for("notifications.list_notifications"))


@bp.post("/notifications/read")
def mark_all_read():
    if not ConfirmForm().validate():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    services.mark_all_read(db(), current_user, now=actor()["now"])
    return redirect(url_for("notifications.list_notifications"))
