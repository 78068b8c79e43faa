"""The summary for the patient as a service: prefill per concordance category, drafts with an optimistic
version, the reading level, signing (re-authentication) into a PDF read back with pypdf, and new versions."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.errors import ConcurrentEdit, IllegalTransition, InvalidInput, PermissionDenied
from review_portal.letters.services import acknowledge_letter
from review_portal.letters.summary import (
    SummaryDraft,
    SummarySignatureRefused,
    count_letters_with_summary,
    save_summary,
    sign_summary,
    start_summary,
    summaries_for_case,
)
from review_portal.letters.summary_lifecycle import TRANSITIONS, SummaryStatus, can_transition
from review_portal.opinions.models import Opinion
from tests.conftest import INSTITUTION, NOW, PASSWORD

LATER = NOW + timedelta(days=1)
CTX = {"ip": "127.0.0.1"}
QUESTIONS = ("Will I need chemo?", "Can I keep working?")
PLAIN = SummaryDraft(
    what_reviewed="We looked at your scans and your reports.",
    conclusion="The team agrees you have breast cancer. They found one more detail about it.",
    treatment="They think you should have chemotherapy before surgery. This can shrink the tumor first.",
    answers=("Yes. The team suggests chemo first.", "Many people keep working. Ask your team what fits you."),
)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _case(make_case, **overrides):
    return make_case("letter_delivered", patient_questions=QUESTIONS, **overrides)


@pytest.mark.parametrize("diagnosis, plan, expect_conclusion, expect_plan", [
    ("confirmed", "agree", "agree with the diagnosis your doctors made", "agree with the treatment plan"),
    ("refined", "modify", "added some details", "suggest some changes"),
    ("different", "different", "different diagnosis", "suggest a different treatment plan"),
])
def test_prefill_uses_the_plain_wording_of_each_category(db, make_case, users, diagnosis, plan, expect_conclusion,
                                                         expect_plan):
    case = _case(make_case)
    opinion = db.scalar(select(Opinion).where(Opinion.case_id == case.id))
    # The signed opinion's categories, as if signed so (the wording is looked up from them).
    opinion.diagnosis_concordance, opinion.plan_concordance = diagnosis, plan
    summary = start_summary(db, case, by=users["reviewer"], now=LATER, **CTX)
    assert expect_conclusion in summary.conclusion and "Refined diagnosis." in summary.conclusion
    assert expect_plan in summary.treatment and "Modified plan." in summary.treatment
    assert "talk about this with your doctor" in summary.treatment
    assert "Dr" in summary.what_reviewed or users["referring"].display_name in summary.what_reviewed
    assert [a["question"] for a in summary.answers] == list(QUESTIONS)
    assert all(a["answer"] == "" for a in summary.answers)
    assert (summary.number, summary.status, summary.grade is not None) == (1, "draft", True)


def test_only_the_lead_writes_and_only_after_the_letter(db, make_case, users):
    case = _case(make_case)
    with pytest.raises(PermissionDenied):
        start_summary(db, case, by=users["other_reviewer"], now=LATER, **CTX)
    with pytest.raises(PermissionDenied):
        start_summary(db, case, by=users["referring"], now=LATER, **CTX)
    early = make_case("in_review", cancer_site="thoracic")
    with pytest.raises(IllegalTransition, match="after the opinion is signed"):
        start_summary(db, early, by=early.reviewer, now=LATER, **CTX)


def test_draft_saves_with_optimistic_version_and_grade(db, make_case, users):
    case = _case(make_case)
    lead = users["reviewer"]
    summary = start_summary(db, case, by=lead, now=LATER, **CTX)
    version = summary.version
    saved = save_summary(db, case, PLAIN, based_on_version=version, by=lead, now=LATER, **CTX)
    assert saved.version == version + 1 and saved.grade is not None and saved.grade <= 8
    assert saved.answers[1] == {"question": "Can I keep working?",
                                "answer": "Many people keep working. Ask your team what fits you."}
    with pytest.raises(ConcurrentEdit):
        save_summary(db, case, PLAIN, based_on_version=version, by=lead, now=LATER, **CTX)
    with pytest.raises(InvalidInput, match="control character"):
        save_summary(db, case, SummaryDraft(conclusion="bad \x1b[31m"), based_on_version=None, by=lead, now=LATER, **CTX)
    with pytest.raises(InvalidInput, match="3 patient questions|2 patient questions"):
        save_summary(db, case, SummaryDraft(answers=("a", "b", "c")), based_on_version=None, by=lead, now=LATER, **CTX)
    with pytest.raises(InvalidInput, match="key images"):
        save_summary(db, case, SummaryDraft(key_images=("0" * 64,)), based_on_version=None, by=lead, now=LATER, **CTX)
    hard = SummaryDraft(conclusion="Notwithstanding considerable histopathological heterogeneity, multidisciplinary "
                                   "deliberation unequivocally substantiated the malignancy's characterisation.")
    assert save_summary(db, case, hard, based_on_version=None, by=lead, now=LATER, **CTX).grade > 12


def test_sign_renders_the_pdf_with_answers_and_glossary_then_a_change_is_a_new_version(db, storage, make_case, users):
    case = _case(make_case)
    lead = users["reviewer"]
    start_summary(db, case, by=lead, now=LATER, **CTX)
    with pytest.raises(InvalidInput, match="an answer to question 1"):
        sign_summary(db, storage, case, password=PASSWORD, attested=True, based_on_version=None,
                     institution=INSTITUTION, by=lead, now=LATER, **CTX)
    save_summary(db, case, PLAIN, based_on_version=None, by=lead, now=LATER, **CTX)
    with pytest.raises(SummarySignatureRefused):
        sign_summary(db, storage, case, password="wrong", attested=True, based_on_version=None,
                     institution=INSTITUTION, by=lead, now=LATER, **CTX)
    signed = sign_summary(db, storage, case, password=PASSWORD, attested=True, based_on_version=None,
                          institution=INSTITUTION, by=lead, now=LATER, **CTX)
    assert signed.is_signed and signed.content_sha256 and signed.letter_id is not None
    reader = PdfReader(io.BytesIO(storage.read_verified(signed.blob_key)))
    text = pdf_text(storage.read_verified(signed.blob_key))
    assert reader.metadata.title.startswith("Summary for the patient")
    for expected in ("Summary for the patient", "Will I need chemo?", "Yes. The team suggests chemo first.",
                     "Many people keep working", "Words used in this summary", "chemotherapy", "Medicines that kill",
                     "tumor", "reading level: grade"):
        assert expected in text, expected
    assert "lymph node" not in text  # only the terms the text uses
    assert b'pdfaid:part="3"' in reader.trailer["/Root"]["/Metadata"].get_object().get_data()  # PDF/A, like the letter
    # Signed is final: no save, no second signature; a change is version 2 started from the signed words.
    with pytest.raises(IllegalTransition):
        save_summary(db, case, PLAIN, based_on_version=None, by=lead, now=LATER, **CTX)
    with pytest.raises(IllegalTransition):
        sign_summary(db, storage, case, password=PASSWORD, attested=True, based_on_version=None,
                     institution=INSTITUTION, by=lead, now=LATER, **CTX)
    second = start_summary(db, case, by=lead, now=LATER, **CTX)
    assert (second.number, second.status, second.conclusion) == (2, "draft", PLAIN.conclusion)
    assert second.answers[0]["answer"] == PLAIN.answers[0]
    assert [s.number for s in summaries_for_case(db, case.id)] == [2, 1]
    assert summaries_for_case(db, case.id)[1].conclusion == PLAIN.conclusion  # version 1 unchanged
    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)))
    assert {"patient_summary.started", "patient_summary.draft_saved", "patient_summary.signed",
            "patient_summary.sign_refused"} <= actions
    assert count_letters_with_summary(db) == 1
    # Acknowledging the letter acknowledges the summary delivered with it.
    acknowledge_letter(db, case, by=users["referring"], now=LATER + timedelta(hours=1), **CTX)
    assert summaries_for_case(db, case.id)[1].acknowledged_at is not None


def test_the_transition_table():
    assert TRANSITIONS[SummaryStatus.SIGNED] == frozenset()
    assert can_transition("draft", "signed") and not can_transition("signed", "draft")


def _signed_with_key_image(db, storage, make_case, users):
    from review_portal.imaging.services import mark_key_image, series_of_case
    from review_portal.opinions.services import OpinionDraft, save_draft
    from review_portal.workflow.signing import sign_and_issue_letter

    case = make_case("in_review", scans=["CT_small.dcm"])
    reviewer = case.reviewer
    ctx = {"by": reviewer, "ip": "127.0.0.1"}
    mark_key_image(db, storage, case, series_of_case(db, case.id)[0], slice_index=0, center=40, width=400,
                   caption="The lump in the lung", now=NOW + timedelta(minutes=40), **ctx)
    save_draft(db, case, OpinionDraft("confirmed", "agree", "Stage IA.", "Lobectomy.", "Typical."),
               based_on_version=None, now=NOW + timedelta(hours=1), **ctx)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                          now=NOW + timedelta(hours=2), **ctx)
    return case


@pytest.mark.parametrize("picked", [False, True])
def test_key_images_only_when_the_lead_picks_them(db, storage, make_case, users, picked):
    from review_portal.imaging.services import key_images_for_letter

    case = _signed_with_key_image(db, storage, make_case, users)
    lead = case.reviewer
    [image] = key_images_for_letter(db, case.id)
    start_summary(db, case, by=lead, now=LATER, **CTX)
    draft = SummaryDraft("We read your scans.", "The team agrees.", "Keep the plan.",
                         key_images=(image["png_key"],) if picked else ())
    save_summary(db, case, draft, based_on_version=None, by=lead, now=LATER, **CTX)
    signed = sign_summary(db, storage, case, password=PASSWORD, attested=True, based_on_version=None,
                          institution=INSTITUTION, by=lead, now=LATER, **CTX)
    reader = PdfReader(io.BytesIO(storage.read_verified(signed.blob_key)))
    text = pdf_text(storage.read_verified(signed.blob_key))
    images = [img for page in reader.pages for img in page.images]
    assert bool(images) is picked
    assert ("The lump in the lung" in text) is picked
