"""/api/v1: thin views over the same loaders and services as the portal, for token-holding systems.

Authentication happened before the view (api.auth.authenticate_request, this blueprint's before_request): current_user is the
token's owner. Every object is loaded through cases.services.get_case_for, so a token sees exactly what
its owner sees; anything else is a 404.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import date

from flask import Blueprint, current_app, jsonify, request, send_file, url_for
from flask_login import current_user
from sqlalchemy import func, select

from review_portal.api import errors as api_errors
from review_portal.api import fhir
from review_portal.api.auth import authenticate_request
from review_portal.api.dicomweb import store_instances
from review_portal.api.openapi import MAX_DOCUMENTS, MAX_ID, MAX_PAGE, MAX_PER_PAGE, document
from review_portal.audit.services import record
from review_portal.cases import services as cases
from review_portal.cases.lifecycle import STATUS_LABELS
from review_portal.cases.models import CANCER_SITES, HISTORY_KINDS, PRIORITIES, REVIEW_TYPES, SEXES
from review_portal.cases.permissions import can_submit_referral
from review_portal.deadlines import parse_holidays
from review_portal.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from review_portal.imaging.models import Instance, Series, Study
from review_portal.letters import fhir as letters_fhir
from review_portal.letters.services import letters_for_case, record_letter_download
from review_portal.opinions.services import opinion_for_case
from review_portal.security import PUBLIC_ENDPOINTS
from review_portal.uploads import scratch, spool_bytes
from review_portal.web import actor, db, storage
from review_portal.workflow.queries import SEARCH_MAX, SORTS, CaseSearch, list_cases_for
from review_portal.workflow.referrals import submit_referral

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def _authenticate():
    """The API authenticates its own requests: a bearer token, never the session cookie (so no CSRF)."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    return authenticate_request()

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class UnsupportedMediaType(DomainError):
    status_code = 415


# ------------------------------------------------------------------ helpers


def _case(case_id: int):
    if not 1 <= case_id <= MAX_ID:
        raise NotFound("No such referral.")
    return cases.get_case_for(db(), current_user, case_id)


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}.")
    return int(raw)


def _json_body() -> object:
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON (Content-Type: application/json).")
    try:
        return json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        raise InvalidInput("The body is not valid JSON.") from None


def _text(value, field: str, max_length: int, problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"{field} must be a string.")
        return ""
    if not value.strip():
        problems.append(f"{field} is required.")
    elif len(value) > max_length:
        problems.append(f"{field} is longer than {max_length} characters.")
    elif not fhir.clean_text(value):
        problems.append(f"{field} contains control characters or invalid Unicode.")
    return value


def _date(value, field: str, problems: list[str]) -> date | None:
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.append(f"{field} must be a date written YYYY-MM-DD.")
    return None


def _choice(value, field: str, allowed, problems: list[str]) -> str:
    if value not in allowed:
        problems.append(f"{field} must be one of: {', '.join(allowed)}.")
    return value if isinstance(value, str) else ""


def _object(value, field: str, keys: set[str], required: set[str], problems: list[str]) -> dict:
    if not isinstance(value, dict):
        problems.append(f"{field} must be an object.")
        return {}
    unknown = sorted(set(value) - keys)
    if unknown:
        problems.append(f"{field} has unknown fields: {', '.join(u[:40] for u in unknown[:10])}.")
    missing = sorted(required - set(value))
    if missing:
        problems.append(f"{field} is missing: {', '.join(missing)}.")
    return value


def _disciplines(value, p: list[str]) -> tuple[str, ...]:
    """The disciplines asked for, lead first (checked against the active ones when the case is opened)."""
    if not isinstance(value, list) or len(value) > 5 or not all(isinstance(v, str) and 0 < len(v) <= 32 for v in value):
        p.append("disciplines must be a list of at most 5 discipline keys.")
        return ()
    return tuple(value)


def _referral_input(body) -> tuple[cases.Referral, list[tuple[str, bytes]]]:
    """The documented ReferralInput, checked field by field; every problem is reported at once."""
    p: list[str] = []
    body = _object(body, "The body", {"patient", "question", "diagnosis_in_question", "plan_in_question",
                                      "review_type", "disciplines", "cancer_site", "priority", "history",
                                      "documents"},
                   {"patient", "question", "diagnosis_in_question", "plan_in_question", "cancer_site", "priority"}, p)
    patient = _object(body.get("patient", {}), "patient", {"name", "birth_date", "sex", "mrn"},
                      {"name", "birth_date", "sex", "mrn"}, p) if "patient" in body else {}
    history = body.get("history", [])
    if not isinstance(history, list) or len(history) > 50:
        p.append("history must be a list of at most 50 entries.")
        history = []
    items = []
    for n, raw in enumerate(history):
        entry = _object(raw, f"history[{n}]", {"occurred_on", "kind", "text"}, {"occurred_on", "kind", "text"}, p)
        if entry:
            occurred = _date(entry.get("occurred_on"), f"history[{n}].occurred_on", p)
            kind = _choice(entry.get("kind"), f"history[{n}].kind", HISTORY_KINDS, p)
            text = _text(entry.get("text"), f"history[{n}].text", 5000, p)
            items.append(cases.HistoryItem(occurred, kind, text))
    docs_in = body.get("documents", [])
    if not isinstance(docs_in, list) or len(docs_in) > MAX_DOCUMENTS:
        p.append(f"documents must be a list of at most {MAX_DOCUMENTS} reports.")
        docs_in = []
    documents = []
    for n, raw in enumerate(docs_in):
        doc = _object(raw, f"documents[{n}]", {"filename", "content_base64"}, {"filename", "content_base64"}, p)
        if doc:
            name = _text(doc.get("filename"), f"documents[{n}].filename", 255, p)
            data = b""
            content = doc.get("content_base64")
            if isinstance(content, str):
                try:
                    data = base64.b64decode(content, validate=True)
                except (binascii.Error, ValueError):
                    data = b""
            if not data:
                p.append(f"documents[{n}].content_base64 is not base64 (or is empty).")
            documents.append((name, data))
    referral = cases.Referral(
        patient_name=_text(patient.get("name"), "patient.name", 200, p) if patient else "",
        patient_dob=_date(patient.get("birth_date"), "patient.birth_date", p) if patient else None,
        patient_sex=_choice(patient.get("sex"), "patient.sex", SEXES, p) if patient else "",
        patient_mrn=_text(patient.get("mrn"), "patient.mrn", 64, p) if patient else "",
        question=_text(body.get("question"), "question", 5000, p),
        diagnosis_in_question=_text(body.get("diagnosis_in_question"), "diagnosis_in_question", 5000, p),
        plan_in_question=_text(body.get("plan_in_question"), "plan_in_question", 5000, p),
        review_type=_choice(body["review_type"], "review_type", REVIEW_TYPES, p) if "review_type" in body else "",
        disciplines=_disciplines(body.get("disciplines", []), p),
        cancer_site=_choice(body.get("cancer_site"), "cancer_site", CANCER_SITES, p),
        priority=_choice(body.get("priority"), "priority", PRIORITIES, p),
        history=items,
    )
    if p:
        raise InvalidInput(" ".join(dict.fromkeys(p)))
    return referral, documents


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


def _referral_json(case) -> dict:
    letters = letters_for_case(db(), case.id)
    studies = []
    for study in db().scalars(select(Study).where(Study.case_id == case.id).order_by(Study.id)):
        instances = db().scalar(select(func.count(Instance.id)).join(Series).where(Series.study_id == study.id)) or 0
        studies.append({"study_instance_uid": study.study_instance_uid, "description": study.description or "",
                        "series": len(study.series), "instances": instances})
    links = {"self": url_for("api.show_referral", case_id=case.id, _external=True),
             "task": url_for("api.fhir_task", case_id=case.id, _external=True),
             "studies": url_for("api.store_studies", case_id=case.id, _external=True)}
    if letters:
        links["letter"] = url_for("api.download_letter", case_id=case.id, _external=True)
        links["diagnostic_report"] = url_for("api.fhir_diagnostic_report", case_id=case.id, _external=True)
    return {
        "id": case.id, "reference": case.reference, "status": case.status, "status_label": case.status_label,
        "fhir_status": case.fhir_status, "review_type": case.review_type, "cancer_site": case.cancer_site,
        "priority": case.priority, "submitted_at": _iso(case.submitted_at), "due_at": _iso(case.due_at),
        "closed_at": _iso(case.closed_at), "on_hold": case.on_hold,
        "patient": {"name": case.patient_name, "birth_date": case.patient_dob.isoformat(), "sex": case.patient_sex,
                    "mrn": case.patient_mrn},
        "question": case.question, "diagnosis_in_question": case.diagnosis_in_question,
        "plan_in_question": case.plan_in_question,
        "documents": [{"id": d.id, "filename": d.filename, "content_type": d.content_type, "size": d.size,
                       "sha256": d.sha256} for d in case.documents],
        "studies": studies,
        "letters": [{"id": l.id, "version": l.version, "issued_at": _iso(l.issued_at), "sha256": l.sha256,
                     "acknowledged_at": _iso(l.acknowledged_at),
                     "url": url_for("api.download_letter", case_id=case.id, version=l.version, _external=True)}
                    for l in letters],
        "links": links,
    }


def _submit(referral: cases.Referral, documents: list[tuple[str, bytes]]):
    """Write the reports to a private scratch directory and hand everything to the portal's one intake service."""
    if not can_submit_referral(current_user):
        raise PermissionDenied("Only referring physicians submit referrals.")
    store = storage()
    with scratch(store) as workdir:
        case, _report = submit_referral(
            db(), store, referral, documents=spool_bytes(documents, workdir, "doc"), scans=[],
            turnaround_days=current_app.config["TURNAROUND_DAYS"],
            holidays=parse_holidays(current_app.config.get("HOLIDAYS")), **actor())
    return case


# ------------------------------------------------------------------ meta


@bp.get("/openapi.json")
def openapi_document():
    response = jsonify(document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/me")
def whoami():
    from flask import g

    token = g.api_token
    return jsonify(id=current_user.id, name=current_user.display_name, email=current_user.email,
                   role=str(current_user.role),
                   token={"name": token.name, "scope": token.scope, "expires_at": _iso(token.expires_at)})


# ------------------------------------------------------------------ referrals


@bp.get("/referrals")
def list_referrals():
    page = _int_arg("page", 1, 1, MAX_PAGE)
    per_page = _int_arg("per_page", 25, 1, MAX_PER_PAGE)
    search = _search_arg()
    ctx = actor()
    rows, total = list_cases_for(db(), ctx["by"], status=search.status, page=page, per_page=per_page, ip=ctx["ip"],
                                 now=ctx["now"], what="case.listed", detail="API", search=search)
    following = None
    if page * per_page < total:
        args = {"page": page + 1, "per_page": per_page} | {
            k: v for k, v in {"q": search.q, "status": search.status, "priority": search.priority,
                              "sort": search.sort, "dir": search.direction if search.sort else None}.items() if v}
        following = url_for("api.list_referrals", _external=True, **args)
    return jsonify(items=[_referral_json(c) for c in rows], page=page, per_page=per_page, total=total,
                   next=following)


def _search_arg() -> CaseSearch:
    """The list's search parameters; a value outside its allowed set is a 400 (a program should know better)."""
    allowed = {"status": list(STATUS_LABELS), "priority": list(PRIORITIES), "sort": list(SORTS), "dir": ["asc", "desc"]}
    values = {}
    for name, choices in allowed.items():
        value = request.args.get(name) or None
        if value is not None and value not in choices:
            raise InvalidInput(f"{name} must be one of: {', '.join(str(c) for c in choices)}.")
        values[name] = value
    q = (request.args.get("q") or "").strip()
    if len(q) > SEARCH_MAX:
        raise InvalidInput(f"q is at most {SEARCH_MAX} characters.")
    return CaseSearch(q=q, status=values["status"], priority=values["priority"], sort=values["sort"] or "",
                      direction=values["dir"] or "asc")


@bp.post("/referrals")
def create_referral():
    if not can_submit_referral(current_user):
        raise PermissionDenied("Only referring physicians submit referrals.")
    referral, documents = _referral_input(_json_body())
    case = _submit(referral, documents)
    response = jsonify(_referral_json(case))
    response.status_code = 201
    response.headers["Location"] = url_for("api.show_referral", case_id=case.id, _external=True)
    return response


@bp.get("/referrals/<int:case_id>")
def show_referral(case_id: int):
    case = _case(case_id)
    record(db(), action="case.viewed", case=case, object_type="case", object_id=case.id, detail="API", **actor())
    return jsonify(_referral_json(case))


@bp.get("/referrals/<int:case_id>/letter")
def download_letter(case_id: int):
    case = _case(case_id)
    version = _int_arg("version", None, 1, 1000)
    letters = letters_for_case(db(), case.id)
    letter = next((l for l in letters if version is None or l.version == version), None)
    if letter is None:
        raise NotFound("No letter has been issued for this referral yet." if not letters
                       else f"This referral has no letter version {version}.")
    record_letter_download(db(), case, letter, **actor())
    # Hashed before the first byte is sent: a stored letter that changed is refused (StoredFileCorrupt).
    return send_file(storage().open_verified(letter.blob_key), mimetype="application/pdf", as_attachment=True,
                     download_name=f"{case.reference}-letter-v{letter.version}.pdf", max_age=0)


@bp.post("/referrals/<int:case_id>/studies")
def store_studies(case_id: int):
    """STOW-RS under the API's prefix: the DICOMweb view itself, with the token's owner as the client."""

    _case(case_id)
    return store_instances(case_id=case_id)


# ------------------------------------------------------------------ FHIR


def _signed(case):
    opinion = opinion_for_case(db(), case.id)
    letters = letters_for_case(db(), case.id)
    if opinion is None or not opinion.is_signed or not letters:
        return opinion, None
    return opinion, letters[0]


@bp.get("/referrals/<int:case_id>/fhir/Task")
def fhir_task(case_id: int):
    case = _case(case_id)
    opinion, letter = _signed(case)
    resource = fhir.case_task(case, opinion, letter)
    record(db(), action="case.fhir_exported", case=case, object_type="case", object_id=case.id, detail="Task (API)",
           **actor())
    return api_errors.fhir_response(resource)


@bp.get("/referrals/<int:case_id>/fhir/DiagnosticReport")
def fhir_diagnostic_report(case_id: int):
    case = _case(case_id)
    opinion, letter = _signed(case)
    if letter is None:
        raise NotFound("The opinion on this referral is not signed yet.")
    resource = letters_fhir.diagnostic_report(case, opinion, letter, storage().read_verified(letter.blob_key))
    record(db(), action="letter.fhir_exported", object_type="letter", object_id=letter.id, case=case,
           detail="DiagnosticReport (API)", **actor())
    return api_errors.fhir_response(resource)


@bp.post("/fhir/Bundle")
def fhir_intake():
    if not can_submit_referral(current_user):
        raise PermissionDenied("Only referring physicians submit referrals.")
    payload = _json_body()  # not JSON at all: 400/415 (as an OperationOutcome, like every error on FHIR paths)
    try:
        intake = fhir.read_intake(fhir.validate_bundle(payload))
        case = _submit(intake.referral, intake.documents)
    except fhir.FhirProblem as problem:
        return api_errors.fhir_response(problem.outcome, problem.status_code)
    except InvalidInput as exc:
        # Valid FHIR that the intake refuses (a report that is not a PDF or image, a birth date in the future).
        outcome = api_errors.operation_outcome([api_errors.issue("business-rule", exc.message)])
        return api_errors.fhir_response(outcome, 422)
    resource = fhir.case_task(case)
    return api_errors.fhir_response(resource, 201, {
        "Location": url_for("api.show_referral", case_id=case.id, _external=True)})
