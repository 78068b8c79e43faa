"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) for one case's studies, so standard clients can read and push scans.

Every URL is scoped to a case: /dicomweb/cases/<case_id>/studies/... A case the user may not see
answers 404, and UIDs are always looked up *within* that case, so a client can never reach another
case's study by guessing its UID. Who the client is comes from `_client_user()` alone: an API token
(`Authorization: Bearer ...`) when one is presented, else the logged-in session.
"""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from flask import Blueprint, Response, current_app, request, stream_with_context, url_for
from flask_login import current_user
from sqlalchemy import func, select

from review_portal.api.auth import authenticate_request, bearer_token, token_user
from review_portal.audit.services import record
from review_portal.cases.services import get_case_for
from review_portal.clock import utcnow
from review_portal.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from review_portal.imaging import delivery, metadata, pixel_check, reading, render_cache, sandboxed, services
from review_portal.imaging.models import Instance, Series, Study
from review_portal.imaging.limits import of_session, stored_frames
from review_portal.imaging.permissions import can_add_scans
from review_portal.uploads import UploadedFile, scratch
from review_portal.web import db, storage

bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb/cases/<int:case_id>")


@bp.before_request
def _authenticate_token():
    """A client that presents a bearer token is its owner; without one, the login session applies
    (security.require_login has already refused anonymous callers)."""
    if bearer_token() is not None:
        return authenticate_request()
    return None

DICOM_JSON = "application/dicom+json"
MAX_RESULTS = 1000
MAX_PARTS = 20000
_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.I)


class UnsupportedMediaType(DomainError):
    status_code = 415


def _client_user():
    """The one place that decides who a DICOMweb client is: the owner of the API token it presents
    (checked before the view by this blueprint's before_request → api.auth, read scope for GET, write for STOW),
    or else the logged-in session."""

    user = token_user()
    if user is not None:
        return user
    if not current_user.is_authenticated:
        raise PermissionDenied("Log in or present an API token.")
    return current_user._get_current_object()


def _actor() -> dict:
    return {"by": _client_user(), "ip": request.remote_addr or "", "now": utcnow()}


def _case(case_id: int):
    return get_case_for(db(), _client_user(), case_id)


def _json(payload, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype=DICOM_JSON)


def _attr(vr: str, *values) -> dict:
    values = [v for v in values if v not in (None, "")]
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _da(date) -> dict:
    return _attr("DA", date.strftime("%Y%m%d") if date else None)


# ------------------------------------------------------------------ lookups within the case


def _study(case, study_uid: str) -> Study:
    study = db().scalar(select(Study).where(Study.case_id == case.id, Study.study_instance_uid == study_uid))
    if study is None:
        raise NotFound("No such study in this case.")
    return study


def _series(study: Study, series_uid: str) -> Series:
    series = db().scalar(select(Series).where(Series.study_id == study.id, Series.series_instance_uid == series_uid))
    if series is None:
        raise NotFound("No such series in this study.")
    return series


def _instance(series: Series, sop_uid: str) -> Instance:
    inst = db().scalar(select(Instance).where(Instance.series_id == series.id, Instance.sop_instance_uid == sop_uid))
    if inst is None:
        raise NotFound("No such instance in this series.")
    return inst


def _query_value(*names: str) -> str | None:
    for name in names:
        value = request.args.get(name)
        if value:
            return value
    return None


def _paged(rows: list) -> list:
    try:
        offset = max(0, int(request.args.get("offset", 0)))
        limit = min(MAX_RESULTS, max(1, int(request.args.get("limit", MAX_RESULTS))))
    except ValueError:
        raise InvalidInput("limit and offset must be whole numbers.")
    return rows[offset:offset + limit]


# ------------------------------------------------------------------ QIDO-RS


def _study_json(case, study: Study) -> dict:
    series = list(study.series)
    modalities = sorted({s.modality for s in series if s.modality})
    instances = db().scalar(select(func.count(Instance.id)).join(Series).where(Series.study_id == study.id)) or 0
    return {
        "0020000D": _attr("UI", study.study_instance_uid),
        "00080020": _da(study.study_date),
        "00081030": _attr("LO", study.description),
        "00080061": _attr("CS", *modalities),
        "00201206": _attr("IS", len(series)),
        "00201208": _attr("IS", instances),
        "00081190": _attr("UR", url_for("dicomweb.retrieve_study", case_id=case.id, study_uid=study.study_instance_uid,
                                        _external=True)),
    }


def _series_json(case, series: Series) -> dict:
    study_uid = series.study.study_instance_uid
    return {
        "0020000D": _attr("UI", study_uid),
        "0020000E": _attr("UI", series.series_instance_uid),
        "00080060": _attr("CS", series.modality),
        "0008103E": _attr("LO", series.description),
        "00200011": _attr("IS", series.series_number),
        "00201209": _attr("IS", len(series.instances)),
        "00081190": _attr("UR", url_for("dicomweb.retrieve_series", case_id=case.id, study_uid=study_uid,
                                        series_uid=series.series_instance_uid, _external=True)),
    }


def _instance_json(case, inst: Instance) -> dict:
    series = inst.series
    study_uid = series.study.study_instance_uid
    return {
        "0020000D": _attr("UI", study_uid),
        "0020000E": _attr("UI", series.series_instance_uid),
        "00080018": _attr("UI", inst.sop_instance_uid),
        "00080016": _attr("UI", inst.sop_class_uid),
        "00200013": _attr("IS", inst.instance_number),
        "00280010": _attr("US", inst.rows),
        "00280011": _attr("US", inst.columns),
        "00280008": _attr("IS", stored_frames(inst.frames)),
        "00081190": _attr("UR", url_for("dicomweb.retrieve_instance", case_id=case.id, study_uid=study_uid,
                                        series_uid=series.series_instance_uid, sop_uid=inst.sop_instance_uid,
                                        _external=True)),
    }


@bp.get("/studies")
def search_studies(case_id: int):
    case = _case(case_id)
    query = select(Study).where(Study.case_id == case.id).order_by(Study.id)
    uid = _query_value("StudyInstanceUID", "0020000D")
    if uid:
        query = query.where(Study.study_instance_uid == uid)
    studies = list(db().scalars(query))
    modality = _query_value("ModalitiesInStudy", "00080061")
    if modality:
        studies = [s for s in studies if any(se.modality == modality for se in s.series)]
    record(db(), action="dicomweb.searched", case=case, object_type="studies", **_actor())
    return _json([_study_json(case, s) for s in _paged(studies)])


def _filter_series(rows: list[Series]) -> list[Series]:
    uid = _query_value("SeriesInstanceUID", "0020000E")
    modality = _query_value("Modality", "00080060")
    return [s for s in rows if (not uid or s.series_instance_uid == uid) and (not modality or s.modality == modality)]


@bp.get("/series")
@bp.get("/studies/<study_uid>/series")
def search_series(case_id: int, study_uid: str | None = None):
    case = _case(case_id)
    if study_uid:
        rows = list(_study(case, study_uid).series)
    else:
        rows = services.series_of_case(db(), case.id)
    record(db(), action="dicomweb.searched", case=case, object_type="series", **_actor())
    return _json([_series_json(case, s) for s in _paged(_filter_series(rows))])


@bp.get("/instances")
@bp.get("/studies/<study_uid>/instances")
@bp.get("/studies/<study_uid>/series/<series_uid>/instances")
def search_instances(case_id: int, study_uid: str | None = None, series_uid: str | None = None):
    case = _case(case_id)
    if series_uid:
        series_list = [_series(_study(case, study_uid), series_uid)]
    elif study_uid:
        series_list = _filter_series(list(_study(case, study_uid).series))
    else:
        series_list = _filter_series(services.series_of_case(db(), case.id))
    rows = [inst for series in series_list for inst in services.ordered_instances(series)]
    uid = _query_value("SOPInstanceUID", "00080018")
    if uid:
        rows = [i for i in rows if i.sop_instance_uid == uid]
    record(db(), action="dicomweb.searched", case=case, object_type="instances", **_actor())
    return _json([_instance_json(case, i) for i in _paged(rows)])


# ------------------------------------------------------------------ WADO-RS


def _uids(study: Study, series: Series | None = None, inst: Instance | None = None) -> str:
    """What was read, by the identifiers a PACS or a security officer can look up (always audited: a
    DICOMweb client pulls whole objects to keep, unlike the viewer's slice-by-slice reads)."""
    parts = [f"study {study.study_instance_uid}"]
    if series is not None:
        parts.append(f"series {series.series_instance_uid}")
    if inst is not None:
        parts.append(f"instance {inst.sop_instance_uid}")
    return "; ".join(parts)


def _multipart(instances: list[Instance]) -> Response:
    """Each instance as a Part 10 file with a zeroed preamble (imaging.delivery), hashed while it streams so a
    stored file that no longer matches its sha256 breaks the transfer instead of arriving whole. Streamed, so
    a whole study never sits in memory."""
    boundary = uuid.uuid4().hex
    store = storage()
    # Read every instance's fields now: the stream runs after the request's transaction has ended.
    chunk = int(current_app.config.get("DICOM_STREAM_CHUNK_BYTES", 1024 * 1024))
    bodies = [delivery.deliver_instance(store, i, chunk) for i in instances]

    def generate():
        for body in bodies:
            yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            yield from body
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return Response(stream_with_context(generate()),
                    content_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


def _instances_of(series_list: list[Series]) -> list[Instance]:
    return [inst for series in series_list for inst in services.ordered_instances(series)]


@bp.get("/studies/<study_uid>")
def retrieve_study(case_id: int, study_uid: str):
    case = _case(case_id)
    study = _study(case, study_uid)
    record(db(), action="dicomweb.retrieved", case=case, object_type="study", object_id=study.id,
           detail=_uids(study), **_actor())
    return _multipart(_instances_of(list(study.series)))


@bp.get("/studies/<study_uid>/series/<series_uid>")
def retrieve_series(case_id: int, study_uid: str, series_uid: str):
    case = _case(case_id)
    series = _series(_study(case, study_uid), series_uid)
    record(db(), action="dicomweb.retrieved", case=case, object_type="series", object_id=series.id,
           detail=_uids(series.study, series), **_actor())
    return _multipart(_instances_of([series]))


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<sop_uid>")
def retrieve_instance(case_id: int, study_uid: str, series_uid: str, sop_uid: str):
    case = _case(case_id)
    inst = _instance(_series(_study(case, study_uid), series_uid), sop_uid)
    record(db(), action="dicomweb.retrieved", case=case, object_type="instance", object_id=inst.id,
           detail=_uids(inst.series.study, inst.series, inst), **_actor())
    return _multipart([inst])


def _metadata(case, instances: list[Instance]) -> Response:
    out = []
    for inst in instances:
        series = inst.series
        bulk_base = url_for("dicomweb.retrieve_instance", case_id=case.id, study_uid=series.study.study_instance_uid,
                            series_uid=series.series_instance_uid, sop_uid=inst.sop_instance_uid, _external=True)
        # Bulk data is served as the whole instance; clients that need pixels retrieve frames or the instance.
        out.append(metadata.dicom_json(storage().verified_local_path(inst.blob_key), bulk_uri=lambda tag, base=bulk_base: base))
    return _json(out)


@bp.get("/studies/<study_uid>/metadata")
def study_metadata(case_id: int, study_uid: str):
    case = _case(case_id)
    study = _study(case, study_uid)
    record(db(), action="dicomweb.metadata", case=case, object_type="study", object_id=study.id,
           detail=_uids(study), **_actor())
    return _metadata(case, _instances_of(list(study.series)))


@bp.get("/studies/<study_uid>/series/<series_uid>/metadata")
def series_metadata(case_id: int, study_uid: str, series_uid: str):
    case = _case(case_id)
    series = _series(_study(case, study_uid), series_uid)
    record(db(), action="dicomweb.metadata", case=case, object_type="series", object_id=series.id,
           detail=_uids(series.study, series), **_actor())
    return _metadata(case, _instances_of([series]))


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<sop_uid>/metadata")
def instance_metadata(case_id: int, study_uid: str, series_uid: str, sop_uid: str):
    case = _case(case_id)
    inst = _instance(_series(_study(case, study_uid), series_uid), sop_uid)
    record(db(), action="dicomweb.metadata", case=case, object_type="instance", object_id=inst.id,
           detail=_uids(inst.series.study, inst.series, inst), **_actor())
    return _metadata(case, [inst])


def _rendered(inst: Instance, frame_number: int) -> Response:
    accept = request.accept_mimetypes
    fmt = "png" if accept.quality("image/png") > accept.quality("image/jpeg") else "jpeg"
    center = request.args.get("window", "").split(",")
    try:
        wc, ww = (float(center[0]), float(center[1])) if len(center) >= 2 else (None, None)
    except ValueError:
        raise InvalidInput("window must be center,width[,function].")
    if ww is not None and ww <= 0:
        raise InvalidInput("The window width must be positive.")
    if not 1 <= frame_number <= stored_frames(inst.frames):
        raise NotFound("No such frame.")
    # From stored metadata alone, so a client that holds the image is answered 304 without touching pixels.
    etag = f"{inst.blob_key}-{frame_number}-{wc}-{ww}-{fmt}"
    if etag in request.if_none_match:
        data = b""
    else:
        try:
            key = render_cache.cache_key(inst.blob_key, frame_number - 1, wc, ww, fmt)
            data = render_cache.rendered(current_app, storage(), key, lambda: sandboxed.render_frame(
                storage().verified_local_path(inst.decoded_key or inst.blob_key), frame_number - 1,
                checked=pixel_check.renders_in_process(inst), center=wc, width=ww, fmt=fmt))
        except reading.DicomRejected as exc:
            raise InvalidInput(f"This image cannot be rendered: {exc.reason}")
    response = Response(data, mimetype=f"image/{fmt}")
    response.set_etag(etag)  # no-store (security.py): no shared caching
    return response.make_conditional(request)


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<sop_uid>/rendered")
@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<sop_uid>/frames/<int:frame>/rendered")
def render_instance(case_id: int, study_uid: str, series_uid: str, sop_uid: str, frame: int = 1):
    case = _case(case_id)
    inst = _instance(_series(_study(case, study_uid), series_uid), sop_uid)
    record(db(), action="dicomweb.rendered", case=case, object_type="instance", object_id=inst.id,
           detail=f"{_uids(inst.series.study, inst.series, inst)}; frame {frame}", **_actor())
    return _rendered(inst, frame)


# ------------------------------------------------------------------ STOW-RS


def split_multipart(stream, boundary: bytes, workdir: Path, *, chunk: int = 1024 * 1024) -> list[Path]:
    """Write each body part of a multipart/related stream to its own file, never holding a part in memory."""
    delimiter = b"\r\n--" + boundary
    buf = b"\r\n"  # so the opening boundary matches like every later one
    parts: list[Path] = []
    out = None
    eof = False

    def fill() -> bool:
        nonlocal buf
        data = stream.read(chunk)
        buf += data
        return bool(data)

    try:
        while True:
            at = buf.find(delimiter)
            if at < 0:
                if out is not None and len(buf) > len(delimiter):
                    keep = len(delimiter) - 1
                    out.write(buf[:-keep])
                    buf = buf[-keep:]
                elif out is None and len(buf) > 64 * 1024:
                    raise InvalidInput("The request is not a multipart/related message with the boundary it declares.")
                if eof:
                    raise InvalidInput("The multipart message ends before its closing boundary.")
                eof = not fill()
                continue
            if out is not None:
                out.write(buf[:at])
                out.close()
                out = None
            buf = buf[at + len(delimiter):]
            while len(buf) < 2 and not eof:
                eof = not fill()
            if buf.startswith(b"--"):
                return parts
            while b"\r\n\r\n" not in buf:
                if eof or len(buf) > 16 * 1024:
                    raise InvalidInput("A part of the multipart message has no readable headers.")
                eof = not fill()
            _headers, _, buf = buf.partition(b"\r\n\r\n")
            if len(parts) >= MAX_PARTS:
                raise InvalidInput(f"Too many instances in one request (limit {MAX_PARTS}).")
            path = workdir / f"part{len(parts)}"
            parts.append(path)
            out = open(path, "wb")
    finally:
        if out is not None:
            out.close()


@bp.post("/studies")
@bp.post("/studies/<study_uid>")
def store_instances(case_id: int, study_uid: str | None = None):
    case = _case(case_id)
    if not can_add_scans(_client_user(), case):
        raise PermissionDenied("Scans can only be added by the referring physician or a coordinator while the case is open.")
    content_type = request.headers.get("Content-Type", "")
    match = _BOUNDARY_RE.search(content_type)
    if not content_type.lower().startswith("multipart/related") or not match:
        raise UnsupportedMediaType('Send multipart/related; type="application/dicom" with a boundary.')
    ctx = _actor()
    store = storage()
    referenced, failed = [], []
    with scratch(store) as workdir:
        paths = split_multipart(request.stream, match.group(1).encode(), workdir)
        if not paths:
            raise InvalidInput("The request holds no instances.")
        # DICOM wants a status per instance in the answer: read each header now (cheap, bounded), and leave
        # the pixel work (indexing, thumbnails) to the ingest job, like every other door that takes scans.
        accepted = []
        for n, path in enumerate(paths):
            name = f"instance {n + 1}"
            try:
                info = sandboxed.inspect_dicom(path, of_session(db()), decode=False)
            except reading.DicomRejected as exc:
                current_app.logger.info("STOW-RS into case %s: %s refused: %s", case.id, name, exc.reason)
                failed.append({"00081197": _attr("US", 0xC000)})  # the reason is in the log, not in the answer
                continue
            if study_uid and info.study_instance_uid != study_uid:
                failed.append({"00081155": _attr("UI", info.sop_instance_uid), "00081197": _attr("US", 0xA900)})
                continue
            accepted.append(UploadedFile(name, path))
            referenced.append({
                "00081150": _attr("UI", info.sop_class_uid), "00081155": _attr("UI", info.sop_instance_uid),
                "00081190": _attr("UR", url_for("dicomweb.retrieve_instance", case_id=case.id,
                                                study_uid=info.study_instance_uid,
                                                series_uid=info.series_instance_uid, sop_uid=info.sop_instance_uid,
                                                _external=True)),
            })
        if accepted:
            services.start_ingest(db(), store, services.create_ingest(db(), store, case, accepted, **ctx),
                                  now=ctx["now"])
    body = {"00081199": {"vr": "SQ", "Value": referenced}, "00081198": {"vr": "SQ", "Value": failed}}
    if study_uid:
        body["00081190"] = _attr("UR", url_for("dicomweb.retrieve_study", case_id=case.id, study_uid=study_uid,
                                               _external=True))
    status = 200 if not failed else (202 if referenced else 409)
    current_app.logger.info("STOW-RS into case %s: %d stored, %d failed", case.id, len(referenced), len(failed))
    return _json(body, status)
