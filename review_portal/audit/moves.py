"""The audit row of one state-machine move, written by the machine's own transition function.

Each lifecycle module (assignment, opinions, messaging) guards a move against its table and then calls
`record_move`, so the guard and the audit row live in one place and a caller cannot forget either.
A plain object outside any session (a unit test of a table) is moved but not audited.
"""
from __future__ import annotations

from datetime import datetime


def record_move(obj, *, action: str, by, ip: str, now: datetime, case, object_type: str, detail: str = "") -> None:
    from sqlalchemy.orm import object_session
    from sqlalchemy.orm.exc import UnmappedInstanceError

    from review_portal.audit.services import record

    try:
        db = object_session(obj)
    except UnmappedInstanceError:
        return
    if db is None:
        return
    record(db, action=action, by=by, ip=ip, now=now, case=case, object_type=object_type, object_id=obj.id,
           detail=detail)
