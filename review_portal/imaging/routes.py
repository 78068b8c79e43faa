"""Viewer pages, rendered slices, header tags, key images, and adding scans to an open referral."""
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from review_portal.audit.services import record, record_image_view
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput, NotFound
from review_portal.imaging import (identity_services, metadata, reading, render_cache, rendering, sandboxed, services,
                                  viewing)
from review_portal.imaging.limits import stored_frames
from review_portal.imaging.forms import AddScansForm, KeyImageForm, UnmarkKeyImageForm
from review_portal.imaging.key_images import anchored_index
from review_portal.imaging.models import IngestStatus
from review_portal.imaging.permissions import can_add_scans, can_mark_key_images, can_see_key_images
from review_portal.uploads import spooled
from review_portal.web import actor, db, storage, wants_json

bp = Blueprint("imaging", __name__)

PRESET_LABELS = {
    "soft_tissue": "Soft tissue", "lung": "Lung", "bone": "Bone", "brain": "Brain",
    "liver": "Liver", "mediastinum": "Mediastinum",
}
FORMATS = {"png": "image/png", "jpg": "image/jpeg"}


def _series_or_404(case_id: int, series_id: int):
    case = get_case_for(db(), current_user, case_id)
    series = services.get_series_in_case(db(), case.id, series_id)
    if series is None:
        raise NotFound("No such series in this case.")
    return case, series


def _audit_pixels(case, series_id: int, what: str) -> None:
    """Every read of image pixels is audited, folded into one event per series and session (see
    audit.services.record_image_view). Also for a 304: the browser shows the cached image again."""
    record_image_view(db(), case=case, series_id=series_id, session_key=str(g.get("user_session_id", "")),
                      what=what, **actor())


@bp.app_template_global("imaging_viewer")
def imaging_viewer(case, series_id: int | None = None) -> dict:
    """Everything templates/imaging/_viewer.html needs, so any page showing a case can include it."""
    all_series = services.series_of_case(db(), case.id)
    # Unless one is asked for, the series with the most slices: the main one, not a one-image localizer.
    largest = max(all_series, key=lambda s: sum(stored_frames(i.frames) for i in s.instances), default=None)
    current = next((s for s in all_series if s.id == series_id), largest)
    return {
        "case": case, "all_series": all_series, "current": current,
        "can_mark": can_mark_key_images(current_user, case),
        "key_form": KeyImageForm(formdata=None),
        "presets": [(name, PRESET_LABELS[name], c, w) for name, (c, w) in rendering.CT_PRESETS.items()],
    }


@bp.app_template_global("imaging_can_add_scans")
def imaging_can_add_scans(case) -> bool:
    return can_add_scans(current_user, case)


@bp.get("/cases/<int:case_id>/viewer")
def view_case_images(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    record(db(), action="images.viewed", case=case, object_type="case", object_id=case.id, **actor())
    return render_template("imaging/viewer.html", case=case, series_id=None)


@bp.get("/cases/<int:case_id>/series/<int:series_id>")
def view_series(case_id: int, series_id: int):
    case, series = _series_or_404(case_id, series_id)
    record(db(), action="series.viewed", case=case, object_type="series", object_id=series.id, **actor())
    return render_template("imaging/viewer.html", case=case, series_id=series.id)


@bp.get("/cases/<int:case_id>/series/<int:series_id>.json")
def series_info(case_id: int, series_id: int):
    """What the viewer needs to scroll a series: slice count, positions, the file's own window."""
    case, series = _series_or_404(case_id, series_id)
    viewing.fill_geometry(db(), storage(), series)
    slices = services.ordered_slices(series)
    windowed = next((s.instance for s in slices if s.instance.window_width), None)
    # Not a second series.viewed: the viewer page that fetches this already recorded one (view_series). What this
    # adds (positions, key images) is part of reading the series: folded into its images.viewed event.
    _audit_pixels(case, series.id, "series information")
    key_images = [k for k in services.key_images_of_case(db(), case.id) if k.series_id == series.id]
    return jsonify(
        id=series.id, label=services.series_label(series), modality=series.modality, count=len(slices),
        slices=[{"position": s.instance.slice_position if s.instance.frames <= 1 else None,
                 "instance_number": s.instance.instance_number, "frame": s.frame} for s in slices],
        render_base=url_for("imaging.render_slice", case_id=case.id, series_id=series.id, index=0, fmt="png")[:-len("0.png")],
        file_window={"center": windowed.window_center, "width": windowed.window_width} if windowed else None,
        key_images=[_key_image_json(case.id, k, slices) for k in key_images],
        frames=viewing.frames_of(slices, lambda instance_id, frame: url_for(
            "imaging.frame_pixels", case_id=case.id, instance_id=instance_id, frame=frame)),
        patient=viewing.patient_of(case, series), frame_of_reference_uid=series.frame_of_reference_uid or "",
    )


@bp.get("/cases/<int:case_id>/instances/<int:instance_id>/frames/<int:frame>/pixels")
def frame_pixels(case_id: int, instance_id: int, frame: int):
    """A frame's stored values for the browser viewer, which windows them itself: little-endian int16, uint16 or
    uint8 (colour interleaved), gzip in transport; the shape and type in X- headers."""
    case = get_case_for(db(), current_user, case_id)
    instance = viewing.get_instance_in_case(db(), case.id, instance_id)
    if instance is None or not 0 <= frame < stored_frames(instance.frames):
        raise NotFound("No such image in this case.")
    _audit_pixels(case, instance.series_id, f"pixels of image {instance.id} frame {frame}")
    etag = f"{instance.blob_key}-{frame}-pixels"
    if etag in request.if_none_match:
        return _image_response(b"", etag, "application/octet-stream")
    try:
        found = viewing.frame_pixels(storage(), instance, frame)
    except reading.DicomRejected as exc:
        raise InvalidInput(f"This image cannot be displayed: {exc.reason}")
    response = _image_response(found.gzipped, etag, "application/octet-stream")
    response.headers.update({"Content-Encoding": "gzip", "X-Pixel-Dtype": found.dtype, "X-Rows": str(found.rows),
                             "X-Columns": str(found.columns), "X-Samples": str(found.samples)})
    return response


def _key_image_json(case_id: int, k, slices=None) -> dict:
    # Where the key image stands today, found by its anchor: scans added since shift the indexes.
    index = k.slice_index if slices is None else anchored_index(slices, k.instance_id, k.frame)
    return {"id": k.id, "series_id": k.series_id, "slice_index": index, "caption": k.caption,
            "sop_instance_uid": k.sop_instance_uid, "frame": k.frame,
            "center": k.window_center, "width": k.window_width,
            "window_label": services.window_label(k.window_center, k.window_width),
            "image_url": url_for("imaging.key_image_png", case_id=case_id, key_image_id=k.id),
            "unmark_url": url_for("imaging.unmark_key_image", case_id=case_id, key_image_id=k.id)}


def _image_response(data: bytes, etag: str, mimetype: str) -> Response:
    response = Response(data, mimetype=mimetype)
    # Patient images: Cache-Control is no-store like every patient-data answer (security.set_security_headers),
    # so no browser or proxy keeps them. The ETag only saves re-sending an image a client still holds.
    response.set_etag(etag)
    return response.make_conditional(request)


def _float_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number.")
    if not -100000 <= value <= 200000:
        raise InvalidInput(f"{name} is out of range.")
    return value


@bp.get("/cases/<int:case_id>/series/<int:series_id>/thumbnail.png")
def series_thumbnail(case_id: int, series_id: int):
    case, series = _series_or_404(case_id, series_id)
    if not series.thumbnail_key:
        raise NotFound("No thumbnail for this series.")
    _audit_pixels(case, series.id, "thumbnail")
    if series.thumbnail_key in request.if_none_match:  # the key is the PNG's sha256: nothing to read to compare
        return _image_response(b"", series.thumbnail_key, "image/png")
    data = services.thumbnail_png(db(), storage(), series)
    return _image_response(data, series.thumbnail_key, "image/png")


def _slice(series, index: int):
    slices = services.ordered_slices(series)
    if not 0 <= index < len(slices):
        raise NotFound("No such slice.")
    return slices[index]


@bp.get("/cases/<int:case_id>/series/<int:series_id>/slices/<int:index>.<any(png, jpg):fmt>")
def render_slice(case_id: int, series_id: int, index: int, fmt: str):
    """One slice with the window asked for (wc/ww) or the file's own; JPEG for scrolling, PNG lossless."""
    case = get_case_for(db(), current_user, case_id)
    found = services.series_for_slices(db(), case.id, series_id)
    if found is None:
        raise NotFound("No such series in this case.")
    series, fingerprint = found
    keys = services.slice_keys_of(current_app).get(series, fingerprint)
    if not 0 <= index < len(keys):
        raise NotFound("No such slice.")
    blob_key, frame, render_key, checked = keys[index]
    center, width = _float_arg("wc"), _float_arg("ww")
    if (center is None) != (width is None) or (width is not None and width <= 0):
        raise InvalidInput("Give both window centre and a positive width, or neither.")
    _audit_pixels(case, series.id, f"slice {index}")
    etag = f"{blob_key}-{frame}-{center}-{width}-{fmt}"
    if etag in request.if_none_match:
        return _image_response(b"", etag, FORMATS[fmt])
    try:
        data = render_cache.rendered(current_app, storage(), render_cache.cache_key(
            blob_key, frame, center, width, fmt), lambda: sandboxed.render_frame(
            storage().verified_local_path(render_key), frame, checked=checked, center=center, width=width,
            fmt="png" if fmt == "png" else "jpeg"))
    except reading.DicomRejected as exc:
        raise InvalidInput(f"This image cannot be displayed: {exc.reason}")
    return _image_response(data, etag, FORMATS[fmt])


@bp.get("/cases/<int:case_id>/series/<int:series_id>/slices/<int:index>/header.json")
def slice_header(case_id: int, series_id: int, index: int):
    case, series = _series_or_404(case_id, series_id)
    chosen = _slice(series, index)
    try:
        elements = metadata.header_elements(storage().verified_local_path(chosen.instance.blob_key))
    except reading.DicomRejected as exc:
        raise InvalidInput(f"The header cannot be read: {exc.reason}")
    record(db(), action="dicom_header.viewed", case=case, object_type="instance", object_id=chosen.instance.id, **actor())
    return jsonify(sop_instance_uid=chosen.instance.sop_instance_uid, elements=elements)


# ------------------------------------------------------------------ key images


@bp.post("/cases/<int:case_id>/key-images")
def mark_key_image(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = KeyImageForm()
    if not form.validate():
        raise InvalidInput("Choose a slice; the window needs a centre and a positive width; keep the caption short.")
    series = services.get_series_in_case(db(), case.id, form.series_id.data)
    if series is None:
        raise NotFound("No such series in this case.")
    key_image = services.mark_key_image(
        db(), storage(), case, series, slice_index=form.slice_index.data, center=form.window_center.data,
        width=form.window_width.data, caption=form.caption.data or "", sop_instance_uid=form.sop_instance_uid.data or None,
        frame=form.frame.data or 0, **actor())
    if wants_json():
        return jsonify(key_image=_key_image_json(case.id, key_image))
    flash("Key image kept.", "success")
    return redirect(url_for("imaging.view_series", case_id=case.id, series_id=series.id))


@bp.post("/cases/<int:case_id>/key-images/<int:key_image_id>/unmark")
def unmark_key_image(case_id: int, key_image_id: int):
    case = get_case_for(db(), current_user, case_id)
    if not UnmarkKeyImageForm().validate():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    services.unmark_key_image(db(), case, key_image_id, **actor())
    if wants_json():
        return jsonify(removed=key_image_id)
    flash("Key image removed.", "info")
    return redirect(url_for("imaging.view_case_images", case_id=case.id))


@bp.get("/cases/<int:case_id>/key-images/<int:key_image_id>.png")
def key_image_png(case_id: int, key_image_id: int):
    case = get_case_for(db(), current_user, case_id)
    if not can_see_key_images(current_user, case):
        # The referrer's copy comes with the letter; before that a key image is the reviewer's working note.
        raise NotFound("No such key image.")
    key_image = services.get_key_image_in_case(db(), case.id, key_image_id)
    _audit_pixels(case, key_image.series_id, f"key image {key_image.id}")
    if key_image.png_key in request.if_none_match:  # the key is the PNG's sha256: nothing to read to compare
        return _image_response(b"", key_image.png_key, "image/png")
    data = services.key_image_png(db(), storage(), key_image)
    return _image_response(data, key_image.png_key, "image/png")


# ------------------------------------------------------------------ adding scans, ingest progress


@bp.route("/cases/<int:case_id>/scans", methods=["GET", "POST"])
def add_scans(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    if not can_add_scans(current_user, case):
        abort(403)
    form = AddScansForm()
    if request.method == "GET":
        return render_template("imaging/add_scans.html", case=case, form=form,
                               ingests=services.ingests_of_case(db(), case.id))
    if not form.validate():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    ctx = actor()
    with spooled(storage(), scans=request.files.getlist(form.scans.name)) as files:
        if not files["scans"]:
            raise InvalidInput("Choose at least one file to send.")
        job = services.start_ingest(db(), storage(),
                                    services.create_ingest(db(), storage(), case, files["scans"], **ctx), now=ctx["now"])
    target = url_for("imaging.show_ingest", case_id=case.id, ingest_id=job.id)
    if wants_json():
        return jsonify(redirect=target, ingest=services.ingest_progress(job))
    return redirect(target)


@bp.get("/cases/<int:case_id>/ingests/<int:ingest_id>")
def show_ingest(case_id: int, ingest_id: int):
    case = get_case_for(db(), current_user, case_id)
    job = services.get_ingest_in_case(db(), case.id, ingest_id)
    progress = services.ingest_progress(job)
    # Studies whose header names another patient: the page shows the warning once the read is done (scans.js).
    progress["identity_questions"] = len(identity_services.identity_warnings(db(), case.id))
    if wants_json() or request.args.get("format") == "json":
        return jsonify(progress)
    return render_template("imaging/ingest.html", case=case, job=job, progress=progress,
                           finished=job.status in (IngestStatus.DONE, IngestStatus.FAILED))
