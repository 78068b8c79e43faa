"""The signed opinion as FHIR R4 resources an EHR can take in.

DiagnosticReport (status final, or appended once an addendum exists) carries the latest letter PDF as
presentedForm; the review itself is a Task (status completed) whose output is that report. Both are
validated with the `fhir.resources` models before they leave (R4B models: DiagnosticReport and Task
are unchanged between R4 and R4B for every element used here), and the report is also parsed with the R4
models of `fhirclient` (SMART on FHIR) in strict mode, since EHRs speak R4.

A multidisciplinary opinion: the report carries one `result` per section, a contained Observation
(code: the discipline; performer: the section's author; issued: its signature time; valueString: the
section's content; note: its addenda), and every dissent in `conclusion`. The letter PDF stays the one
presentedForm: it is the document that was signed and delivered.
"""
from __future__ import annotations

import base64
import hashlib

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.task import Task

from review_portal.errors import IllegalTransition

SYSTEM_CASE = "urn:northbridge:second-opinion:case"
SYSTEM_LETTER = "urn:northbridge:second-opinion:letter-verification-code"
SYSTEM_MRN = "urn:northbridge:second-opinion:referring-mrn"
LOINC = "http://loinc.org"
# LOINC 11488-4 Consult note; 18748-4 Diagnostic imaging study.
REPORT_CODES = {"oncology_opinion": ("11488-4", "Consult note"), "radiology_read": ("18748-4", "Diagnostic imaging study")}
SEX = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}


def _instant(d) -> str:
    return d.isoformat().replace("+00:00", "Z")


def _conclusion(opinion, review_type: str) -> str:
    if review_type == "radiology_read":
        parts = [f"Impression: {opinion.impression}"]
        if opinion.radpeer_score:
            parts.append(f"RADPEER {opinion.radpeer_label}")
    else:
        parts = [opinion.diagnosis_concordance_label, opinion.plan_concordance_label,
                 f"Diagnosis: {opinion.reviewer_diagnosis}", f"Recommended plan: {opinion.recommended_plan}"]
        if opinion.urgency_label:
            parts.append(f"Urgency: {opinion.urgency_label}")
    parts += [f"Addendum {a.number}: {a.text}" for a in opinion.addenda]
    return "\n".join(p for p in parts if p)


def diagnostic_report(case, opinion, letter, pdf: bytes) -> dict:
    if not opinion.is_signed or letter is None:
        raise IllegalTransition("Only a signed opinion with an issued letter is available as FHIR.")
    code, display = REPORT_CODES.get(case.review_type, REPORT_CODES["oncology_opinion"])
    reviewer = opinion.reviewer
    resource = {
        "resourceType": "DiagnosticReport",
        "id": f"opinion-{case.reference}",
        "contained": [{
            "resourceType": "Patient", "id": "patient",
            "identifier": [{"system": SYSTEM_MRN, "value": case.patient_mrn}],
            "name": [{"text": case.patient_name}],
            "birthDate": case.patient_dob.isoformat(),
            "gender": SEX.get(case.patient_sex, "unknown"),
        }],
        "identifier": [{"system": SYSTEM_CASE, "value": case.reference},
                       {"system": SYSTEM_LETTER, "value": letter.verification_code}],
        "basedOn": [{"identifier": {"system": SYSTEM_CASE, "value": case.reference}, "type": "ServiceRequest"}],
        "status": "appended" if opinion.addenda else "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "RAD" if case.review_type == "radiology_read" else "OTH"}],
                      "text": case.review_type_label}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}],
                 "text": f"Second opinion – {case.review_type_label}, {case.cancer_site_label}"},
        "subject": {"reference": "#patient", "display": case.patient_name},
        "effectiveDateTime": _instant(opinion.signed_at),
        "issued": _instant(letter.issued_at),
        "performer": [{"display": reviewer.display_name}],
        "resultsInterpreter": [{"display": reviewer.display_name}],
        "conclusion": _conclusion(opinion, case.review_type),
        "presentedForm": [{
            "contentType": "application/pdf",
            "language": "en-GB",
            "data": base64.b64encode(pdf).decode("ascii"),
            # FHIR's Attachment.hash is SHA-1 by definition, a transfer checksum and not a security control:
            # the letter's sha256 is in the title and on /verify.
            "hash": base64.b64encode(hashlib.sha1(pdf, usedforsecurity=False).digest()).decode("ascii"),
            "size": len(pdf),
            "title": f"Second-opinion letter {case.reference} v{letter.version} (sha256 {letter.sha256})",
            "creation": _instant(letter.issued_at),
        }],
    }
    board = _board_of(case)
    if board["sections"]:
        observations = section_observations(board)
        resource["contained"] += observations
        resource["result"] = [{"reference": f"#{o['id']}", "display": o["code"]["text"]} for o in observations]
        dissents = [f"Dissent – {d['author']} ({d['discipline']}): {d['text']}" for d in board["dissents"]]
        resource["conclusion"] = "\n".join([resource["conclusion"], *dissents])
    DiagnosticReport.model_validate(resource)
    parse_r4_strict(resource)
    return resource


def _board_of(case) -> dict:
    from sqlalchemy.orm import object_session

    from review_portal.opinions.sections import board_letter_values

    db = object_session(case)
    return board_letter_values(db, case) if db is not None else {"sections": [], "dissents": []}


def section_observations(board: dict) -> list[dict]:
    """One contained Observation per signed (or recorded) section of the multidisciplinary opinion."""
    found = []
    for n, section in enumerate(board["sections"], start=1):
        text = "\n".join(f"{f['label']}: {f['value']}" for f in section["fields"])
        observation = {
            "resourceType": "Observation", "id": f"section-{n}",
            "status": "amended" if section["addenda"] else "final",
            "code": {"text": f"{section['discipline']} section"},
            "subject": {"reference": "#patient"},
            "performer": [{"display": section["author"]}],
            "valueString": text or "(no content)",
        }
        when = _section_instant(section)
        if when:
            observation["issued"] = when
        notes = [{"text": f"Addendum {a['number']} ({a['signed_by']}, {a['signed_at']}): {a['text']}"}
                 for a in section["addenda"]]
        if not section["signed"]:
            notes.insert(0, {"text": "Free-text findings recorded before sections existed; not signed as a section."})
        if notes:
            observation["note"] = notes
        found.append(observation)
    return found


def _section_instant(section: dict) -> str:
    return section.get("signed_at_iso") or ""


def parse_r4_strict(resource: dict) -> None:
    """Parse with fhirclient's R4 models in strict mode: an element R4 does not know raises."""
    from fhirclient.models.diagnosticreport import (
        DiagnosticReport as R4DiagnosticReport,
    )

    R4DiagnosticReport(resource, strict=True)


def review_task(case, opinion, letter) -> dict:
    if not opinion.is_signed or letter is None:
        raise IllegalTransition("The review task is complete only once the opinion is signed.")
    resource = {
        "resourceType": "Task",
        "id": f"review-{case.reference}",
        "identifier": [{"system": SYSTEM_CASE, "value": case.reference}],
        "status": "completed",
        "businessStatus": {"text": case.status_label},
        "intent": "order",
        "priority": "urgent" if case.priority == "urgent" else "routine",
        "code": {"text": f"Second-opinion review ({case.review_type_label})"},
        "description": case.question,
        "focus": {"identifier": {"system": SYSTEM_CASE, "value": case.reference}, "type": "ServiceRequest"},
        "for": {"display": case.patient_name},
        "authoredOn": _instant(case.submitted_at),
        "lastModified": _instant(letter.issued_at),
        "executionPeriod": {"start": _instant(case.submitted_at), "end": _instant(opinion.signed_at)},
        "requester": {"display": case.referring.display_name},
        "owner": {"display": opinion.reviewer.display_name},
        "output": [{"type": {"text": "Second-opinion report"},
                    "valueReference": {"reference": f"DiagnosticReport/opinion-{case.reference}"}}],
    }
    Task.model_validate(resource)
    return resource
