from flask import Blueprint, Response, render_template, request
from flask_login import current_user

from review_portal.audit.services import record
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput, NotFound
from review_portal.imaging import dicom
from review_portal.imaging.services import get_series_in_case, ordered_slices, series_of_case
from review_portal.web import actor, db, storage

bp = Blueprint("imaging", __name__)

PRESET_LABELS = {
    "soft_tissue": "Soft tissue", "lung": "Lung", "bone": "Bone", "brain": "Brain",
    "liver": "Liver", "mediastinum": "Mediastinum",
}


def _series_or_404(case_id: int, series_id: int):
    case = get_case_for(db(), current_user, case_id)
    series = get_series_in_case(db(), case.id, series_id)
    if series is None:
        raise NotFound("No such series in this case.")
    return case, series


@bp.get("/cases/<int:case_id>/series/<int:series_id>")
def view_series(case_id: int, series_id: int):
    case, series = _series_or_404(case_id, series_id)
    slices = ordered_slices(series)
    record(db(), action="series.viewed", case=case, object_type="series", object_id=series.id, **actor())
    presets = [(name, PRESET_LABELS[name], c, w) for name, (c, w) in dicom.CT_PRESETS.items()] if series.modality == "CT" else []
    return render_template("imaging/viewer.html", case=case, series=series, slices=slices,
                           all_series=series_of_case(db(), case.id), presets=presets)


def _image_response(data: bytes, etag: str, mimetype: str) -> Response:
    response = Response(data, mimetype=mimetype)
    response.set_etag(etag)
    # Private: these are patient images. Immutable for the session: the blob behind the ETag never changes.
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response.make_conditional(request)


def _float_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number.")
    if not -100000 <= value <= 100000:
        raise InvalidInput(f"{name} is out of range.")
    return value


@bp.get("/cases/<int:case_id>/series/<int:series_id>/thumbnail.png")
def series_thumbnail(case_id: int, series_id: int):
    _case, series = _series_or_404(case_id, series_id)
    if not series.thumbnail_key:
        raise NotFound("No thumbnail for this series.")
    return _image_response(storage().read_bytes(series.thumbnail_key), series.thumbnail_key, "image/png")


@bp.get("/cases/<int:case_id>/series/<int:series_id>/slices/<int:index>.png")
def render_slice(case_id: int, series_id: int, index: int):
    _case, series = _series_or_404(case_id, series_id)
    slices = ordered_slices(series)
    if not 0 <= index < len(slices):
        raise NotFound("No such slice.")
    center, width = _float_arg("wc"), _float_arg("ww")
    if (center is None) != (width is None) or (width is not None and width <= 0):
        raise InvalidInput("Give both window centre and a positive width, or neither.")
    chosen = slices[index]
    etag = f"{chosen.instance.blob_key}-{chosen.frame}-{center}-{width}"
    if etag in request.if_none_match:
        return _image_response(b"", etag, "image/png")
    try:
        png = dicom.render_frame(storage().local_path(chosen.instance.blob_key), chosen.frame, center=center, width=width)
    except dicom.DicomRejected as exc:
        raise InvalidInput(f"This image cannot be displayed: {exc.reason}")
    return _image_response(png, etag, "image/png")
