"""FHIR R4 in and out.

Intake: a Bundle holding one Patient, one ServiceRequest and any number of DocumentReferences (each
with its report embedded as base64 `attachment.data`) becomes a referral. The Bundle is first
validated as a whole against the resource models (structure, types, value formats → 400), then read
into a referral (missing or unusable values → 422); both answer an OperationOutcome naming each
problem and where it is. Output: the review as a Task whose status follows the case
(cases.lifecycle.FHIR_TASK_STATUS), and the signed opinion as a DiagnosticReport (letters.fhir).

Models: `fhir.resources` 8 ships R5 (default), R4B and STU3, but no plain R4 package. We validate
with R4B: R4B is a technical correction of R4 whose changes are confined to the medication-definition,
evidence and subscription resources; Bundle, Patient, ServiceRequest, DocumentReference, Task,
DiagnosticReport and OperationOutcome and every data type we use are the same in R4 and R4B.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import date

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from review_portal.api.errors import issue, operation_outcome
from review_portal.cases.models import CANCER_SITES, REVIEW_TYPES
from review_portal.cases.services import (
    DISCIPLINE_FOR_REVIEW_TYPE,
    DOCUMENT_TYPES,
    Referral,
)
from review_portal.letters.fhir import SYSTEM_CASE, SYSTEM_MRN

SYSTEM_REVIEW_TYPE = "urn:northbridge:second-opinion:review-type"
SYSTEM_CANCER_SITE = "urn:northbridge:second-opinion:cancer-site"
# The disciplines asked for, in order (the first is the lead review): keys of the admin-edited disciplines.
SYSTEM_DISCIPLINE = "urn:northbridge:second-opinion:discipline"
SYSTEM_BUSINESS_STATUS = "urn:northbridge:second-opinion:case-status"
EXT_PLAN_IN_QUESTION = "urn:northbridge:second-opinion:plan-in-question"
PRIORITY_IN = {"routine": "routine", "urgent": "urgent", "asap": "urgent", "stat": "urgent"}
GENDER_IN = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}
MAX_DOCUMENTS = 50


class FhirProblem(Exception):
    """The request cannot become a referral; `outcome` says why (an OperationOutcome)."""

    def __init__(self, status_code: int, issues: list[dict]):
        super().__init__("; ".join(i["diagnostics"] for i in issues))
        self.status_code = status_code
        self.outcome = operation_outcome(issues)
        OperationOutcome.model_validate(self.outcome)


@dataclass(frozen=True)
class Intake:
    referral: Referral
    documents: list[tuple[str, bytes]]  # (file name for messages, content)


def _path(loc) -> str:
    out = "Bundle"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_bundle(payload) -> Bundle:
    if not isinstance(payload, dict) or payload.get("resourceType") != "Bundle":
        raise FhirProblem(400, [issue("structure", "Send a FHIR Bundle (resourceType \"Bundle\") as JSON.")])
    try:
        return Bundle.model_validate(payload)
    except ValidationError as exc:
        issues = [issue("structure", f"{e['msg']}", expression=_path(e["loc"])) for e in exc.errors()[:50]]
        raise FhirProblem(400, issues) from None
    except (ValueError, TypeError) as exc:  # the models raise these for a few malformed primitives
        raise FhirProblem(400, [issue("structure", str(exc)[:500])]) from None


def _codes(concept) -> list[tuple[str | None, str | None]]:
    return [(c.system, c.code) for c in (getattr(concept, "coding", None) or [])]


def _code_in(concepts, system: str) -> str | None:
    for concept in concepts or []:
        for sys, code in _codes(concept):
            if sys == system and code:
                return code
    return None


def _text_of(concept) -> str:
    if concept is None:
        return ""
    if concept.text:
        return concept.text
    return next((c.display for c in (concept.coding or []) if c.display), "")


def read_intake(bundle: Bundle) -> Intake:
    """The referral a validated Bundle describes, or FhirProblem(422) listing everything missing."""
    problems: list[dict] = []

    def need(ok, code: str, message: str, where: str):
        if not ok:
            problems.append(issue(code, message, expression=where))
        return ok

    need(bundle.type in ("transaction", "batch", "collection"), "business-rule",
         f"Send a transaction, batch or collection Bundle, not {bundle.type!r}.", "Bundle.type")
    entries = list(enumerate(bundle.entry or []))
    by_type: dict[str, list] = {}
    for n, entry in entries:
        if entry.resource is not None:
            by_type.setdefault(entry.resource.get_resource_type(), []).append((n, entry))
    patients, requests_, documents = by_type.get("Patient", []), by_type.get("ServiceRequest", []), \
        by_type.get("DocumentReference", [])
    need(len(patients) == 1, "required", f"The Bundle needs exactly one Patient (it has {len(patients)}).", "Bundle.entry")
    need(len(requests_) == 1, "required",
         f"The Bundle needs exactly one ServiceRequest (it has {len(requests_)}).", "Bundle.entry")
    need(len(documents) <= MAX_DOCUMENTS, "too-costly", f"At most {MAX_DOCUMENTS} DocumentReferences per referral.",
         "Bundle.entry")
    if problems:
        raise FhirProblem(422, problems)

    pn, pentry = patients[0]
    patient = pentry.resource
    pw = f"Bundle.entry[{pn}].resource"
    patient_refs = {f"Patient/{patient.id}"} if patient.id else set()
    if pentry.fullUrl:
        patient_refs.add(pentry.fullUrl)

    identifiers = [i for i in (patient.identifier or []) if i.value]
    mr = [i for i in identifiers if i.type and any(c.code == "MR" for c in (i.type.coding or []))]
    mrn = (mr or identifiers or [None])[0]
    need(mrn is not None, "required", "The Patient needs an identifier (the medical record number).",
         f"{pw}.identifier")
    name = ""
    if patient.name:
        first = patient.name[0]
        name = first.text or " ".join([*(first.given or []), first.family or ""]).strip()
    need(bool(name.strip()), "required", "The Patient needs a name.", f"{pw}.name")
    dob = None
    if patient.birthDate is not None:
        dob = patient.birthDate if isinstance(patient.birthDate, date) else None
    need(dob is not None, "required", "The Patient needs a full birthDate (YYYY-MM-DD).", f"{pw}.birthDate")
    sex = GENDER_IN.get(patient.gender or "unknown", "unknown")

    sn, sentry = requests_[0]
    sr = sentry.resource
    sw = f"Bundle.entry[{sn}].resource"
    need(sr.status in ("active", "draft"), "business-rule",
         f"The ServiceRequest's status is {sr.status!r}; send an active request.", f"{sw}.status")
    subject = sr.subject.reference if sr.subject else None
    need(subject is not None and subject in patient_refs, "invalid",
         "ServiceRequest.subject must refer to the Patient in this Bundle (its fullUrl or Patient/id).",
         f"{sw}.subject")
    review_type = _code_in([sr.code] if sr.code else [], SYSTEM_REVIEW_TYPE) or ""
    need(not review_type or review_type in REVIEW_TYPES, "code-invalid",
         f"Unknown review type {review_type!r}; use one of {', '.join(REVIEW_TYPES)} (system {SYSTEM_REVIEW_TYPE}).",
         f"{sw}.code")
    disciplines = tuple(code[:40] for system, code in _codes(sr.code) if system == SYSTEM_DISCIPLINE and code)
    need(bool(disciplines) or review_type in DISCIPLINE_FOR_REVIEW_TYPE, "required",
         f"ServiceRequest.code needs the discipline the question asks for, coded in {SYSTEM_DISCIPLINE} "
         "(the first is the lead review; more codings add contributing reviews).", f"{sw}.code")
    site = _code_in(sr.bodySite, SYSTEM_CANCER_SITE)
    need(site in CANCER_SITES, "code-invalid" if site else "required",
         f"ServiceRequest.bodySite needs a cancer site coded in {SYSTEM_CANCER_SITE}: one of "
         f"{', '.join(CANCER_SITES)}.", f"{sw}.bodySite")
    priority = PRIORITY_IN.get(sr.priority or "routine", "routine")
    question = "\n".join(n.text for n in (sr.note or []) if n.text).strip()
    need(bool(question), "required", "Put the question for the reviewer in ServiceRequest.note.", f"{sw}.note")
    diagnosis = "\n".join(t for t in (_text_of(c) for c in (sr.reasonCode or [])) if t).strip()
    need(bool(diagnosis), "required", "Put the diagnosis in question in ServiceRequest.reasonCode (text).",
         f"{sw}.reasonCode")
    plan = "\n".join(e.valueString for e in (sr.extension or [])
                     if e.url == EXT_PLAN_IN_QUESTION and e.valueString).strip()
    need(bool(plan), "required", f"Put the plan in question in a ServiceRequest extension {EXT_PLAN_IN_QUESTION} "
                                 "(valueString).", f"{sw}.extension")

    files: list[tuple[str, bytes]] = []
    for dn, dentry in documents:
        doc = dentry.resource
        dw = f"Bundle.entry[{dn}].resource"
        if doc.subject is not None and doc.subject.reference not in patient_refs:
            need(False, "invalid", "DocumentReference.subject refers to another patient.", f"{dw}.subject")
        for cn, content in enumerate(doc.content or []):
            att = content.attachment
            where = f"{dw}.content[{cn}].attachment"
            if not need(att.data is not None, "not-supported",
                        "Embed the report as base64 in attachment.data; we do not fetch attachment.url.", where):
                continue
            data = att.data if isinstance(att.data, bytes) else _b64(att.data)
            if not need(bool(data), "invalid", "attachment.data is empty or not base64.", f"{where}.data"):
                continue
            need(att.contentType in DOCUMENT_TYPES, "not-supported",
                 f"Reports must be PDF files or images ({', '.join(DOCUMENT_TYPES)}), not {att.contentType!r}.",
                 f"{where}.contentType")
            title = att.title or doc.description or f"document-{len(files) + 1}"
            files.append((title[:200], data))
    for value, where in ((name, f"{pw}.name"), (mrn.value if mrn else "", f"{pw}.identifier"),
                         (question, f"{sw}.note"), (diagnosis, f"{sw}.reasonCode"), (plan, f"{sw}.extension"),
                         *((title, "Bundle.entry") for title, _ in files)):
        need(clean_text(value), "invalid", "Text contains control characters or invalid Unicode.", where)
    if problems:
        raise FhirProblem(422, problems)

    referral = Referral(
        patient_name=name.strip()[:200], patient_dob=dob, patient_sex=sex, patient_mrn=mrn.value.strip()[:64],
        question=question, diagnosis_in_question=diagnosis, plan_in_question=plan,
        review_type=review_type, disciplines=disciplines, cancer_site=site, priority=priority, history=[],
    )
    return Intake(referral=referral, documents=files)


def _b64(value) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return b""


# ------------------------------------------------------------------ output


def _instant(d) -> str:
    return d.isoformat().replace("+00:00", "Z")


def case_task(case, opinion=None, letter=None) -> dict:
    """The review as a FHIR Task in whatever state the case is in (validated before it leaves)."""
    signed = opinion is not None and opinion.is_signed and letter is not None
    reviewer = case.reviewer
    resource = {
        "resourceType": "Task",
        "id": f"review-{case.reference}",
        "identifier": [{"system": SYSTEM_CASE, "value": case.reference}],
        "status": case.fhir_status,
        "businessStatus": {"coding": [{"system": SYSTEM_BUSINESS_STATUS, "code": case.status,
                                       "display": case.status_label}], "text": case.status_label},
        "intent": "order",
        "priority": "urgent" if case.priority == "urgent" else "routine",
        "code": {"coding": [{"system": SYSTEM_REVIEW_TYPE, "code": case.review_type,
                             "display": case.review_type_label}]
                 + ([{"system": SYSTEM_DISCIPLINE, "code": case.discipline}] if case.discipline else []),
                 "text": f"Second-opinion review ({case.review_type_label})"},
        "description": case.question,
        "focus": {"identifier": {"system": SYSTEM_CASE, "value": case.reference}, "type": "ServiceRequest"},
        "for": {"identifier": {"system": SYSTEM_MRN, "value": case.patient_mrn}, "display": case.patient_name},
        "authoredOn": _instant(case.submitted_at),
        "lastModified": _instant(case.updated_at),
        "executionPeriod": {"start": _instant(case.submitted_at)},
        "restriction": {"period": {"end": _instant(case.due_at)}},
        "requester": {"display": case.referring.display_name},
    }
    if reviewer is not None:
        resource["owner"] = {"display": reviewer.display_name}
    if signed:
        resource["executionPeriod"]["end"] = _instant(opinion.signed_at)
        resource["output"] = [{"type": {"text": "Second-opinion report"},
                               "valueReference": {"reference": f"DiagnosticReport/opinion-{case.reference}"}}]
    Task.model_validate(resource)
    return resource


def clean_text(value: str) -> bool:
    """Text a database will store as given: valid Unicode (no lone surrogates) and no control characters
    other than tab and line breaks (PostgreSQL refuses NUL outright)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(ch) < 32 and ch not in "\t\n\r" or ord(ch) == 127 for ch in value)
