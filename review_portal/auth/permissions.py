"""Who runs the portal (staff) and administers it. Case-level permissions live in cases.permissions."""
from flask import abort
from flask_login import current_user

from review_portal.auth.models import Role


def is_admin(user) -> bool:
    return getattr(user, "role", None) == Role.ADMIN


def is_staff(user) -> bool:
    """Coordinators and administrators: they run the service and see every case's workflow."""
    return getattr(user, "role", None) in (Role.COORDINATOR, Role.ADMIN)


def admin_only() -> None:
    """For administrators' pages: anyone else gets a 403 (the denial is audited by the error handler)."""
    if not is_admin(current_user):
        abort(403)
