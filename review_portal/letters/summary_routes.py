"""The summary for the patient's pages: the lead's editor (autosave returns the reading level), signing,
and the audited download beside the letter."""
from flask import Blueprint, flash, jsonify, redirect, render_template, send_file, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from review_portal.audit.services import record_list_view
from review_portal.cases.services import get_case_for
from review_portal.errors import InvalidInput, PermissionDenied
from review_portal.imaging.services import key_images_for_page
from review_portal.letters.summary import (
    SummaryDraft,
    acknowledge_summary,
    can_write_summary,
    get_signed_summary_in_case,
    latest_summary,
    missing_for_signature,
    record_summary_download,
    save_summary,
    sign_summary,
    start_summary,
    summaries_for_case,
)
from review_portal.letters.summary_forms import PatientSummaryForm, SummarySignForm
from review_portal.letters.summary_text import reading_level
from review_portal.opinions.forms import draft_version
from review_portal.web import ConfirmForm, actor, db, letterhead, storage

bp = Blueprint("summaries", __name__)


def _case_for_lead(case_id: int):
    """The case, when the current user is its lead and the letter is out (403 otherwise, 404 for strangers)."""
    case = get_case_for(db(), current_user, case_id)
    if not can_write_summary(db(), current_user, case):
        raise PermissionDenied("Only the lead reviewer who signed the opinion writes the summary for the patient, "
                               "once the letter is issued.")
    return case


def _form_for(summary, images) -> PatientSummaryForm:
    form = PatientSummaryForm(obj=summary) if summary is not None else PatientSummaryForm()
    form.key_images.choices = [(image["png_key"], image["caption"] or "Key image") for image in images]
    return form


def _draft_from(form: PatientSummaryForm) -> SummaryDraft:
    return SummaryDraft(what_reviewed=form.what_reviewed.data or "", conclusion=form.conclusion.data or "",
                        treatment=form.treatment.data or "", answers=tuple(e.data or "" for e in form.answers.entries),
                        key_images=tuple(form.key_images.data or ()))


def _save_from_request(case):
    form = _form_for(None, key_images_for_page(db(), case.id))
    if not form.validate():
        raise InvalidInput("Please correct the summary: " + "; ".join(
            f"{name.replace('_', ' ')}: {errs}" for name, errs in form.errors.items()))
    return save_summary(db(), case, _draft_from(form), based_on_version=draft_version(form.version.data), **actor())


@bp.get("/cases/<int:case_id>/patient-summary")
def edit_summary(case_id: int):
    case = _case_for_lead(case_id)
    summary = latest_summary(db(), case.id)
    images = key_images_for_page(db(), case.id)
    form = _form_for(summary, images)
    if summary is not None:
        form.version.data = str(summary.version)
        form.key_images.data = [item["png_key"] for item in summary.key_images or []]
        # FieldList(obj=...) cannot read the answers' dicts: fill it with the answers in the questions' order.
        while form.answers.entries:
            form.answers.pop_entry()
        for item in summary.answers or []:
            form.answers.append_entry(item.get("answer", ""))
    sign_form = SummarySignForm()
    sign_form.version.data = form.version.data
    record_list_view(db(), [case], what="patient_summary.viewed", detail="summary editor", **actor())
    return render_template("letters/summary_edit.html", case=case, summary=summary, form=form, sign_form=sign_form,
                           start_form=ConfirmForm(), images=images,
                           level=reading_level(summary.full_text) if summary else None,
                           missing=missing_for_signature(summary) if summary and not summary.is_signed else [],
                           versions=summaries_for_case(db(), case.id))


@bp.post("/cases/<int:case_id>/patient-summary/start")
def start(case_id: int):
    """Open the draft: version 1 prefilled from the opinion, or the next version after a signed one."""
    case = _case_for_lead(case_id)
    if not ConfirmForm().validate():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    summary = start_summary(db(), case, **actor())
    flash(f"Summary for the patient, version {summary.number}: draft open.", "success")
    return redirect(url_for("summaries.edit_summary", case_id=case.id))


@bp.post("/cases/<int:case_id>/patient-summary")
def save(case_id: int):
    case = _case_for_lead(case_id)
    _save_from_request(case)
    flash("Summary saved.", "success")
    return redirect(url_for("summaries.edit_summary", case_id=case.id))


@bp.post("/cases/<int:case_id>/patient-summary/autosave")
def autosave(case_id: int):
    """Saves while the lead types and answers the reading level, computed here so that there is one formula."""
    case = _case_for_lead(case_id)
    summary = _save_from_request(case)
    return jsonify(version=summary.version, saved_at=summary.updated_at.isoformat(),
                   saved_label=f"Summary saved {summary.updated_at:%H:%M:%S} UTC",
                   missing=missing_for_signature(summary), **reading_level(summary.full_text).as_json())


@bp.get("/cases/<int:case_id>/patient-summary/token")
def token(case_id: int):
    _case_for_lead(case_id)
    return jsonify(csrf_token=generate_csrf())


@bp.post("/cases/<int:case_id>/patient-summary/sign")
def sign(case_id: int):
    case = _case_for_lead(case_id)
    form = SummarySignForm()
    if not form.validate():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
    summary = sign_summary(db(), storage(), case, password=form.password.data, attested=form.attest.data,
                           based_on_version=draft_version(form.version.data) or None, institution=letterhead(),
                           **actor())
    flash(f"Summary for the patient, version {summary.number}, signed and delivered with the letter.", "success")
    return redirect(url_for("letters.letter_versions", case_id=case.id, _anchor="patient-summary"))


@bp.get("/cases/<int:case_id>/patient-summaries/<int:summary_id>.pdf")
def download_summary(case_id: int, summary_id: int):
    """The referrer, the reviewers and the coordinators download it beside the letter; every download is audited."""
    case = get_case_for(db(), current_user, case_id)
    summary = get_signed_summary_in_case(db(), case.id, summary_id)
    record_summary_download(db(), case, summary, **actor())
    return send_file(storage().open_verified(summary.blob_key), mimetype="application/pdf", as_attachment=True,
                     download_name=f"{case.reference}-summary-for-the-patient-v{summary.number}.pdf", max_age=0)


@bp.post("/cases/<int:case_id>/patient-summaries/<int:summary_id>/acknowledge")
def acknowledge(case_id: int, summary_id: int):
    case = get_case_for(db(), current_user, case_id)
    summary = get_signed_summary_in_case(db(), case.id, summary_id)
    if not ConfirmForm().validate():
        raise InvalidInput("Your form expired. Reload the page and try again.")
    acknowledge_summary(db(), case, summary, **actor())
    flash(f"Receipt of the summary for the patient (version {summary.number}) acknowledged.", "success")
    return redirect(url_for("letters.letter_versions", case_id=case.id, _anchor="patient-summary"))
