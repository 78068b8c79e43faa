"""The measurements' JSON API, used by the viewer's tools (static/js/measure.js) and the opinion page's list.

CSRF-protected like every other POST (the page sends its token in X-CSRFToken); each view loads the case through
the permission-checked loader, calls one service, and answers with the measurement as the server computed it.
"""
from flask import Blueprint, jsonify, request, url_for
from flask_login import current_user

from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput
from review_portal.imaging.measuring import describe
from review_portal.opinions import measurements as service
from review_portal.web import actor, db, storage

bp = Blueprint("measurements", __name__)


def measurement_json(case_id: int, m, editable: bool) -> dict:
    return {"id": m.id, "review_id": m.review_id, "author_id": m.author_id, "instance_id": m.instance_id,
            "sop_instance_uid": m.sop_instance_uid, "frame": m.frame, "kind": m.kind, "kind_label": m.kind_label,
            "points": m.points, "label": m.label, "image": service.image_label(m), "values": m.values,
            "display": describe(m.kind, m.values),
            "calibrated": bool(m.values.get("calibrated", True)), "frozen": m.is_frozen,
            "editable": editable and not m.is_frozen and m.author_id == current_user.id,
            "url": url_for("measurements.change_measurement", case_id=case_id, measurement_id=m.id)}


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("Send the measurement as a JSON object.")
    return body


def _can_edit(case) -> bool:
    review = service.own_review(case, current_user)
    return review is not None and not service.review_is_signed(db(), review)


@bp.get("/cases/<int:case_id>/measurements.json")
def list_measurements(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    rows = service.measurements_seen(db(), case, **actor())
    editable = _can_edit(case)
    return jsonify(measurements=[measurement_json(case.id, m, editable) for m in rows], can_edit=editable,
                   create_url=url_for("measurements.create_measurement", case_id=case.id))


@bp.post("/cases/<int:case_id>/measurements")
def create_measurement(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    body = _body()
    m = service.create_measurement(db(), storage(), case, sop_instance_uid=str(body.get("sop_instance_uid") or ""),
                                   frame=body.get("frame", 0), kind=str(body.get("kind") or ""),
                                   points=body.get("points"), label=body.get("label") or "", **actor())
    return jsonify(measurement=measurement_json(case.id, m, True)), 201


@bp.route("/cases/<int:case_id>/measurements/<int:measurement_id>", methods=["PATCH", "DELETE"])
def change_measurement(case_id: int, measurement_id: int):
    case = get_case_for(db(), current_user, case_id)
    if request.method == "DELETE":
        service.delete_measurement(db(), case, measurement_id, **actor())
        return jsonify(removed=measurement_id)
    body = _body()
    m = service.update_measurement(db(), storage(), case, measurement_id, points=body.get("points"),
                                   label=body.get("label"), **actor())
    return jsonify(measurement=measurement_json(case.id, m, True))
