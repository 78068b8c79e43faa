"""The pages that gather several domains: the worklist, the referral form and the case page."""
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from review_portal.assignment.forms import AddReviewForm, CompleteReviewForm, DeclineForm, ReleaseLetterForm
from review_portal.assignment.services import offer_for
from review_portal.assignment.sla import review_row
from review_portal.audit.services import record
from review_portal.cases.disciplines import active_disciplines
from review_portal.cases.forms import CancelForm, CloseForm, ReferralForm, WithdrawForm
from review_portal.cases.lifecycle import OPEN_STATUSES, STATUS_LABELS, CaseStatus
from review_portal.cases.models import PRIORITIES
from review_portal.cases.permissions import can_add_review, can_submit_referral, can_view_audit
from review_portal.cases.questions import patient_questions_for
from review_portal.cases.services import HistoryItem, Referral, get_case_for
from review_portal.deadlines import parse_holidays, policy_from_config
from review_portal.errors import InvalidInput, PermissionDenied
from review_portal.imaging.permissions import key_images_on_case_page
from review_portal.imaging.services import instance_counts, key_images_for_page, series_of_case
from review_portal.jobs import jobs_for_case
from review_portal.letters.services import letters_for_case, preview_letter_pdf
from review_portal.letters.summary import signed_summaries_for_case
from review_portal.messaging.forms import (
    FollowUpAnswerForm,
    FollowUpForm,
    InformationAnswerForm,
    InformationRequestForm,
    MessageForm,
)
from review_portal.messaging.services import follow_ups_for, requests_for
from review_portal.messaging.thread import conversation_for
from review_portal.opinions.forms import AddendumForm, OpinionForm, SignForm, draft_version
from review_portal.opinions.permissions import can_add_addendum
from review_portal.opinions.services import SignatureRefused, case_for_opinion, opinion_for_case
from review_portal.uploads import spooled
from review_portal.web import ConfirmForm, actor, db, is_fetch, letterhead, page_arg, storage, valid
from review_portal.workflow.conversations import answer_follow_up as answer_follow_up_with_addendum
from review_portal.workflow.conversations import answer_information_request
from review_portal.workflow.activity import case_activity
from review_portal.workflow.boards import board_forms, board_panel
from review_portal.workflow.queries import SEARCH_MAX, SORTS, CaseSearch, case_page_load, list_cases_for
from review_portal.workflow.referrals import submit_referral
from review_portal.workflow.signing import sign_addendum, sign_and_issue_letter

bp = Blueprint("workflow", __name__)


@bp.get("/")
def index():
    return redirect(url_for("workflow.list_cases"))


@bp.get("/cases")
def list_cases():
    search = search_args()
    page = page_arg()
    per_page = current_app.config["PAGE_SIZE"]
    ctx = actor()
    rows, total = list_cases_for(db(), ctx["by"], status=search.status, page=page, per_page=per_page, ip=ctx["ip"],
                                 now=ctx["now"], what="case.listed", detail="worklist", search=search)
    # A reviewer accepts an offer with one click from the worklist.
    offers = {c.id: a for c in rows for a in c.assignments if a.reviewer_id == current_user.id and a.is_offered}
    return render_template("workflow/list.html", cases=rows, total=total, page=page, per_page=per_page,
                           status=search.status, statuses=STATUS_LABELS, offers=offers, open_statuses=OPEN_STATUSES,
                           accept_form=ConfirmForm(), search=search, priorities=PRIORITIES, sorts=SORTS,
                           search_args=search_url_args(search))


def search_args() -> CaseSearch:
    """The list's GET parameters, each checked against its allowed values (anything else is ignored)."""
    status = request.args.get("status") or None
    priority = request.args.get("priority") or None
    sort = request.args.get("sort") or ""
    direction = request.args.get("dir") or "asc"
    return CaseSearch(q=(request.args.get("q") or "").strip()[:SEARCH_MAX],
                      status=status if status in STATUS_LABELS else None,
                      priority=priority if priority in PRIORITIES else None,
                      sort=sort if sort in SORTS else "", direction=direction if direction in ("asc", "desc") else "asc")


def search_url_args(search: CaseSearch) -> dict:
    """The search as URL parameters (pager links keep it), without the empty ones."""
    args = {"q": search.q, "status": search.status, "priority": search.priority, "sort": search.sort,
            "dir": search.direction if search.sort else None}
    return {k: v for k, v in args.items() if v}


def _referral_from(form: ReferralForm) -> Referral:
    history = [
        HistoryItem(e.form.occurred_on.data, e.form.kind.data, e.form.text.data)
        for e in form.history.entries
        if e.form.occurred_on.data and e.form.kind.data and (e.form.text.data or "").strip()
    ]
    return Referral(
        patient_name=form.patient_name.data, patient_dob=form.patient_dob.data, patient_sex=form.patient_sex.data,
        patient_mrn=form.patient_mrn.data, question=form.question.data,
        diagnosis_in_question=form.diagnosis_in_question.data, plan_in_question=form.plan_in_question.data,
        disciplines=form.chosen_disciplines, cancer_site=form.cancer_site.data, priority=form.priority.data,
        history=history, patient_questions=tuple(e.data or "" for e in form.patient_questions.entries),
    )


@bp.route("/referrals/new", methods=["GET", "POST"])
def new_referral():
    if not can_submit_referral(current_user):
        abort(403)
    form = ReferralForm().offer(active_disciplines(db()))
    if request.method == "POST" and not form.validate():
        message = "Please correct the highlighted fields."
        if is_fetch():
            return jsonify(error=message, fields=_flatten_errors(form)), 400
        flash(message, "error")
        return render_template("workflow/new.html", form=form), 400
    if request.method == "GET":
        return render_template("workflow/new.html", form=form)

    store = storage()
    with spooled(store, documents=request.files.getlist(form.documents.name),
                 scans=request.files.getlist(form.scans.name)) as files:
        case, report = submit_referral(
            db(), store, _referral_from(form), documents=files["documents"], scans=files["scans"],
            turnaround_days=current_app.config["TURNAROUND_DAYS"],
            holidays=parse_holidays(current_app.config.get("HOLIDAYS")), **actor(),
        )
    if report.finished:
        flash(f"Referral {case.reference} submitted. Scans: {report.summary}", "success")
    else:
        flash(f"Referral {case.reference} submitted. The scans are being processed; the case page shows their progress.",
              "success")
    for name, reason in report.rejected[:20]:
        flash(f"Skipped {name}: {reason}", "warning")
    if case.status == CaseStatus.TRIAGE:
        flash("No matching reviewer is available right now; a coordinator will assign the case.", "info")
    target = url_for("workflow.show_case", case_id=case.id)
    if is_fetch():
        return jsonify(redirect=target)
    return redirect(target)


def _flatten_errors(form) -> dict[str, list[str]]:
    """Field id → messages, including errors added to history rows after WTForms validated the list."""
    flat = {}
    for field in form:
        if field.type == "FieldList":
            for entry in field.entries:
                for sub in (entry.form if hasattr(entry, "form") else [entry]):  # rows of fields, or plain fields
                    if sub.errors:
                        flat[sub.id] = list(sub.errors)
        elif field.errors:
            flat[field.id] = list(field.errors)
    return flat


@bp.get("/cases/<int:case_id>")
def show_case(case_id: int):
    case = get_case_for(db(), current_user, case_id, options=case_page_load())
    ctx = actor()
    record(db(), action="case.viewed", case=case, object_type="case", object_id=case.id, **ctx)
    policy = policy_from_config(current_app.config)
    series = series_of_case(db(), case.id)
    info_requests = requests_for(db(), case.id)
    follow_ups = follow_ups_for(db(), case.id)
    return render_template(
        "workflow/case.html", case=case, series=series, instance_counts=instance_counts(db(), [s.id for s in series]),
        opinion=opinion_for_case(db(), case.id), letters=letters_for_case(db(), case.id),
        audit=case_activity(db(), case) if can_view_audit(current_user, case) else None,
        # What the letter shows, on the page once the letter is out; before that the viewer shows them to the team.
        key_images=key_images_for_page(db(), case.id) if key_images_on_case_page(current_user, case) else [],
        confirm_form=ConfirmForm(), withdraw_form=WithdrawForm(), cancel_form=CancelForm(), close_form=CloseForm(),
        review_rows={r.id: review_row(r, policy, ctx["now"]) for r in case.reviews if r.is_open},
        offer=offer_for(db(), case, current_user), decline_form=DeclineForm(), add_review_form=AddReviewForm().offer(
            active_disciplines(db()) if can_add_review(current_user, case) else []),
        release_form=ReleaseLetterForm(), complete_form=CompleteReviewForm(),
        thread=conversation_for(db(), case.id, requests=info_requests, follow_ups=follow_ups),
        info_request=next((r for r in info_requests if r.is_open), None),
        pending_jobs=[j for j in jobs_for_case(db(), case.id) if not j.is_done],
        info_requests=info_requests, follow_ups=follow_ups,
        follow_up_max=current_app.config["FOLLOW_UP_QUESTIONS_MAX"],
        message_form=MessageForm(), request_form=InformationRequestForm(), answer_form=InformationAnswerForm(),
        follow_up_form=FollowUpForm(), follow_up_answer_form=FollowUpAnswerForm(),
        board=board_panel(db(), case, current_user), board_forms=board_forms(),
        patient_questions=patient_questions_for(db(), case.id),
        patient_summaries=signed_summaries_for_case(db(), case.id) if letters_for_case(db(), case.id) else [],
    )


@bp.post("/cases/<int:case_id>/information-requests/answer")
def answer_information(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(InformationAnswerForm())
    store = storage()
    with spooled(store, documents=request.files.getlist(form.documents.name),
                 scans=request.files.getlist(form.scans.name)) as files:
        result = answer_information_request(
            db(), store, case, answer=form.answer.data or "", documents=files["documents"], scans=files["scans"],
            policy=policy_from_config(current_app.config), **actor())
    flash(f"Answer sent. Case {case.reference} is back in review.", "success")
    if result.scan_report is not None:
        flash(f"Scans: {result.scan_report.summary}", "info")
    return redirect(url_for("workflow.show_case", case_id=case.id) + "#conversation")


@bp.post("/cases/<int:case_id>/follow-ups/<int:follow_up_id>/answer")
def answer_follow_up(case_id: int, follow_up_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = valid(FollowUpAnswerForm())
    answer_follow_up_with_addendum(db(), storage(), case, follow_up_id, answer=form.answer.data,
                                   password=form.password.data, attested=form.attest.data,
                                   institution=letterhead(), **actor())
    flash("Answer sent to the referring physician.", "success")
    return redirect(url_for("workflow.show_case", case_id=case.id) + "#conversation")


@bp.post("/cases/<int:case_id>/opinion/sign")
def sign_opinion(case_id: int):
    case = case_for_opinion(db(), current_user, case_id)
    form = SignForm()
    if not form.validate():
        return _sign_page_again(case, form)
    based_on = draft_version(form.version.data) if form.version.data else None
    try:
        letter = sign_and_issue_letter(db(), storage(), case, password=form.password.data, attested=form.attest.data,
                                       institution=letterhead(), based_on_version=based_on, **actor())
    except SignatureRefused as refused:
        # A wrong password is a 400 on the same form; its audit record survives the rollback.
        form.password.errors = [refused.message]
        return _sign_page_again(case, form)
    except InvalidInput as problem:
        return _sign_page_again(case, form, problem.message)
    if letter is not None:
        flash(f"Opinion signed. Letter version {letter.version} delivered to the referring physician.", "success")
    else:
        flash("Opinion signed. The letter is being prepared; this page shows when it is delivered.", "success")
    return redirect(url_for("workflow.show_case", case_id=case.id))


@bp.get("/cases/<int:case_id>/opinion/preview.pdf")
def preview_letter(case_id: int):
    """The letter as it would be issued from the current draft, watermarked DRAFT (nothing is stored or sent)."""
    case = case_for_opinion(db(), current_user, case_id)
    opinion = opinion_for_case(db(), case.id)
    if opinion is None:
        raise InvalidInput("Save a draft of the opinion before previewing the letter.")
    pdf = preview_letter_pdf(db(), storage(), case, opinion, institution=letterhead(), **actor())
    return _draft_pdf(pdf, case)


@bp.post("/cases/<int:case_id>/opinion/addenda/preview")
def preview_addendum(case_id: int):
    """The next letter version with this addendum, watermarked DRAFT, before the signer re-authenticates."""
    case = get_case_for(db(), current_user, case_id)
    opinion = opinion_for_case(db(), case.id)
    if opinion is None or not opinion.is_signed or not can_add_addendum(current_user, case, opinion):
        raise PermissionDenied("Only the reviewer who signed the opinion can add an addendum.")
    text = (request.form.get("text") or request.form.get("answer") or "").strip()
    if not text:
        raise InvalidInput("Write the text of the addendum to preview it.")
    reason = (request.form.get("reason") or "").strip()[:300]
    pdf = preview_letter_pdf(db(), storage(), case, opinion, institution=letterhead(),
                             pending_addendum={"reason": reason, "text": text[:8000]}, **actor())
    return _draft_pdf(pdf, case)


def _draft_pdf(pdf: bytes, case):
    response = make_response(pdf)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'inline; filename="DRAFT-{case.reference}.pdf"'
    return response


def _sign_page_again(case, sign_form, message: str = ""):
    """The opinion page with the signing problem beside the field it concerns (400): the reviewer stays on the form."""
    opinion = opinion_for_case(db(), case.id)
    form = OpinionForm(obj=opinion)
    form.version.data = str(opinion.version if opinion else 0)
    sign_form.password.data = ""
    return render_template("opinions/edit.html", case=case, opinion=opinion, form=form, sign_form=sign_form,
                           series=series_of_case(db(), case.id), sign_error=message,
                           patient_questions=patient_questions_for(db(), case.id)), 400


@bp.post("/cases/<int:case_id>/opinion/addenda")
def add_addendum(case_id: int):
    case = get_case_for(db(), current_user, case_id)
    form = AddendumForm()
    if not form.validate():
        raise InvalidInput(" ".join(e for errs in form.errors.values() for e in errs))
    letter = sign_addendum(db(), storage(), case, form.text.data, reason=form.reason.data or "",
                           password=form.password.data, attested=form.attest.data, institution=letterhead(), **actor())
    flash(f"Addendum signed. Letter version {letter.version} delivered to the referring physician.", "success")
    return redirect(url_for("letters.letter_versions", case_id=case.id))
