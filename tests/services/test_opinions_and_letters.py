"""Structured opinions, signing, addenda and the letters they produce, read back from real PDFs."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from pypdf import PdfReader

from review_portal.errors import ConcurrentEdit, IllegalTransition, InvalidInput, PermissionDenied
from review_portal.imaging.rendering import render_frame
from review_portal.letters.models import Letter
from review_portal.letters.render import LetterURLFetcher, RefusedURLError, render_letter_pdf
from review_portal.letters.services import letters_for_case, normalise_code, verify_letter
from review_portal.opinions.services import OpinionDraft, opinion_for_case, save_draft
from review_portal.workflow.signing import add_addendum, sign_addendum, sign_and_issue_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD, testdata

IP = "127.0.0.1"
SCRIPT = "<script>alert(1)</script>"
FILE_IMG = "<img src=file:///etc/passwd>"
LINK = "<link href=http://evil.example/x.css rel=stylesheet>"

ONCOLOGY = OpinionDraft(
    diagnosis_concordance="refined", plan_concordance="modify",
    reviewer_diagnosis="Invasive carcinoma NST, grade 2.", recommended_plan="Genomic assay before chemotherapy.",
    rationale="Node-negative disease; benefit depends on genomic risk.", further_tests="Oncotype DX.",
    stage_text="Stage IA (AJCC 8th)", tnm_t="pT1c", tnm_n="pN0", tnm_m="cM0",
    trial_consideration="consider", clinical_trials="Adjuvant de-escalation trials.", urgency="prompt",
)


def pdf_text(pdf: bytes) -> tuple[PdfReader, list[str], str]:
    reader = PdfReader(io.BytesIO(pdf))
    pages = [p.extract_text() or "" for p in reader.pages]
    return reader, pages, " ".join(" ".join(pages).split())


def put_key_images(storage, n=4) -> list[dict]:
    ct = testdata("CT_small.dcm")
    images = []
    for i, (label, c, w) in enumerate([("Soft tissue", 40, 400), ("Lung", -600, 1500), ("Bone", 400, 1800),
                                       ("Liver", 60, 160)][:n], start=1):
        key, _ = storage.put_bytes(render_frame(ct, 0, center=c, width=w))
        images.append({"caption": f"Key finding {i}", "series_label": "CT chest series 2", "slice_label": f"Slice {i}",
                       "window_label": f"{label} W {w} / L {c}", "png_key": key})
    return images


def sign(db, storage, case, **kw):
    return sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                                 by=case.reviewer, ip=IP, now=NOW + timedelta(hours=2), **kw)


def test_oncology_letter_carries_every_field_key_images_and_footer(db, storage, make_case):
    case = make_case("in_review")
    save_draft(db, case, ONCOLOGY, based_on_version=0, by=case.reviewer, ip=IP, now=NOW)
    images = put_key_images(storage)
    letter = sign(db, storage, case, key_images=images)
    opinion = opinion_for_case(db, case.id)
    assert opinion.is_signed and len(opinion.content_sha256) == 64 and opinion.signed_at == NOW + timedelta(hours=2)
    pdf = storage.read_bytes(letter.blob_key)
    reader, pages, text = pdf_text(pdf)
    for expected in ("Dear Referring,", "Referring Hospital", "1 Test Street", "Re: Test Patient", "DOB 1960-01-02",
                     case.reference, "Do you agree?", "Core biopsy: IDC grade 2.", "2026-10-01",
                     "Diagnosis refined", "Modify plan", "Invasive carcinoma NST, grade 2.", "pT1c pN0 cM0",
                     "Stage IA (AJCC 8th)", "Node-negative disease", "Genomic assay before chemotherapy.",
                     "Oncotype DX.", "Consider a clinical trial", "Adjuvant de-escalation trials.",
                     "Prompt: act within two weeks", "Figure 1. Key finding 1", "Figure 4. Key finding 4",
                     "Window/level Lung W 1500 / L -600", "CT chest series 2", "Reviewer, MD", "Medical oncology",
                     "Electronically signed 23 November 2026, 11:00 UTC", opinion.content_sha256,
                     f"enter verification code {letter.verification_code}"):
        assert expected in text, expected
    for number, page in enumerate(pages, start=1):
        flat = " ".join(page.split())
        assert f"Case {case.reference} · Verification code {letter.verification_code} · Page {number} of {len(pages)}" in flat
    assert sum(len(p.images) for p in reader.pages) >= 4  # the four key images are embedded, not just captioned
    meta = reader.metadata
    assert meta.title == f"Second opinion – {case.reference}" and meta.author == "Reviewer"
    assert "Oncology opinion" in meta.subject
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b'pdfaid:part="3"' in xmp
    assert "/StructTreeRoot" in reader.trailer["/Root"]  # tagged PDF
    assert letter.sha256 == __import__("hashlib").sha256(pdf).hexdigest()


def test_radiology_read_needs_a_comment_from_radpeer_2b_up(db, storage, make_case, users):
    case = make_case("in_review", review_type="radiology_read")
    assert case.reviewer.id == users["radiologist"].id
    draft = OpinionDraft(findings="Spiculated 23 mm mass RUL.", impression="Suspicious for primary lung cancer.",
                         radpeer_score="2b")
    opinion = save_draft(db, case, draft, based_on_version=0, by=case.reviewer, ip=IP, now=NOW)
    with pytest.raises(InvalidInput, match="RADPEER 2b needs one"):
        sign(db, storage, case)
    save_draft(db, case, OpinionDraft(**{**draft.__dict__, "radpeer_comment": "The mass was missed on the original read."}),
               based_on_version=opinion.version, by=case.reviewer, ip=IP, now=NOW)
    letter = sign(db, storage, case)
    _, _, text = pdf_text(storage.read_bytes(letter.blob_key))
    for expected in ("Spiculated 23 mm mass RUL.", "Suspicious for primary lung cancer.",
                     "2b – Understandable miss, likely clinically significant", "The mass was missed on the original read.",
                     "ORIGINAL READ (ACR RADPEER)"):
        assert expected in text, expected


def test_unknown_choice_and_oversized_text_are_refused(db, make_case):
    case = make_case("in_review")
    with pytest.raises(InvalidInput):
        save_draft(db, case, OpinionDraft(radpeer_score="4"), based_on_version=0, by=case.reviewer, ip=IP, now=NOW)
    with pytest.raises(InvalidInput):
        save_draft(db, case, OpinionDraft(tnm_t="T" * 40), based_on_version=0, by=case.reviewer, ip=IP, now=NOW)
    assert opinion_for_case(db, case.id) is None


def test_two_saves_from_the_same_version_conflict(db, make_case):
    case = make_case("in_review")
    first = save_draft(db, case, OpinionDraft(rationale="tab A"), based_on_version=0, by=case.reviewer, ip=IP, now=NOW)
    loaded = first.version
    save_draft(db, case, OpinionDraft(rationale="tab A again"), based_on_version=loaded, by=case.reviewer, ip=IP, now=NOW)
    with pytest.raises(ConcurrentEdit, match="another tab"):
        save_draft(db, case, OpinionDraft(rationale="tab B, stale"), based_on_version=loaded, by=case.reviewer, ip=IP, now=NOW)
    with pytest.raises(ConcurrentEdit):  # a tab opened before the draft existed
        save_draft(db, case, OpinionDraft(rationale="tab C"), based_on_version=0, by=case.reviewer, ip=IP, now=NOW)
    db.expire_all()
    assert opinion_for_case(db, case.id).rationale == "tab A again"


def test_addendum_reissues_version_2_with_both_texts_and_keeps_version_1(db, storage, make_case, users):
    case = make_case("letter_delivered")
    v1 = letters_for_case(db, case.id)[0]
    v1_pdf = storage.read_bytes(v1.blob_key)
    later = NOW + timedelta(days=1)
    with pytest.raises(InvalidInput, match="password"):
        sign_addendum(db, storage, case, "x", reason="", password="wrong", attested=True, by=case.reviewer, ip=IP,
                      now=later, institution=INSTITUTION)
    with pytest.raises(PermissionDenied):
        add_addendum(db, storage, case, "Not mine.", by=users["other_reviewer"], ip=IP, now=later, institution=INSTITUTION)
    v2 = sign_addendum(db, storage, case, "HER2 ISH is negative; the plan stands.", reason="HER2 result received",
                       password=PASSWORD, attested=True, by=case.reviewer, ip=IP, now=later, institution=INSTITUTION)
    assert isinstance(v2, Letter) and v2.version == 2 and v2.verification_code != v1.verification_code
    assert case.status == "letter_delivered"  # no new state for an amended letter
    _, _, text = pdf_text(storage.read_bytes(v2.blob_key))
    for expected in ("Amended letter: version 2", "This letter replaces version 1 of 23 November 2026",
                     "What changed: Addendum 1 of 24 November 2026: HER2 result received.",
                     "Refined diagnosis.", "Because of the biopsy.",  # the signed opinion, unchanged
                     "Addendum 1: HER2 result received", "HER2 ISH is negative; the plan stands.",
                     "Electronically signed by Reviewer, MD, 24 November 2026, 09:00 UTC"):
        assert expected in text, expected
    assert storage.read_bytes(v1.blob_key) == v1_pdf  # version 1 stays retrievable, byte for byte
    assert "Addendum" not in pdf_text(v1_pdf)[2]
    v3 = add_addendum(db, storage, case, "Second follow-up answer.", reason="Follow-up question", by=case.reviewer,
                      ip=IP, now=later + timedelta(hours=1), institution=INSTITUTION)
    _, _, text3 = pdf_text(storage.read_bytes(v3.blob_key))
    assert v3.version == 3 and "HER2 ISH is negative" in text3 and "Second follow-up answer." in text3
    assert "replaces version 1 of 23 November 2026, version 2 of 24 November 2026" in text3


def test_addendum_needs_a_signed_opinion_and_works_on_a_closed_case(db, storage, make_case):
    draft_case = make_case("in_review")
    with pytest.raises(IllegalTransition):
        add_addendum(db, storage, draft_case, "Too early.", by=draft_case.reviewer, ip=IP, now=NOW, institution=INSTITUTION)
    closed = make_case("closed")
    letter = add_addendum(db, storage, closed, "Late correction.", by=closed.reviewer, ip=IP, now=NOW + timedelta(days=3),
                          institution=INSTITUTION)
    assert letter.version == 2 and closed.status == "closed"


def test_verification_matches_genuine_codes_only(db, storage, make_case):
    case = make_case("letter_delivered")
    letter = letters_for_case(db, case.id)[0]
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", letter.verification_code)
    result = verify_letter(db, letter.verification_code.lower().replace("-", " "))
    assert result["sha256"] == letter.sha256 and result["issued_at"] == letter.issued_at and result["superseded_at"] is None
    forged = letter.verification_code[:-1] + ("A" if letter.verification_code[-1] != "A" else "B")
    assert verify_letter(db, forged) is None
    for junk in ("", "x" * 5000, "'; drop table letters; --", "../../etc/passwd"):
        assert verify_letter(db, junk) is None
    assert normalise_code("ab12 cd34 ef56 gu78") is None  # U is not in the alphabet
    assert normalise_code("ab12 cd34 ef56 gh7o") == "AB12-CD34-EF56-GH70"  # O read as zero
    add_addendum(db, storage, case, "Amendment.", by=case.reviewer, ip=IP, now=NOW + timedelta(days=1), institution=INSTITUTION)
    assert verify_letter(db, letter.verification_code)["superseded_at"] is not None


def test_hostile_opinion_text_renders_inert(db, storage, make_case):
    case = make_case("in_review")
    hostile = OpinionDraft(
        diagnosis_concordance="different", plan_concordance="different", reviewer_diagnosis=SCRIPT,
        recommended_plan=FILE_IMG, rationale=LINK, further_tests='<img src="keyimage:' + "0" * 64 + '">',
        clinical_trials="{{ 7*7 }} {% raw %}", stage_text="<style>*{display:none}</style>",
    )
    save_draft(db, case, hostile, based_on_version=0, by=case.reviewer, ip=IP, now=NOW)
    letter = sign(db, storage, case)
    reader, _, text = pdf_text(storage.read_bytes(letter.blob_key))
    for literal in (SCRIPT, FILE_IMG, LINK, "{{ 7*7 }} {% raw %}", "<style>*{display:none}</style>"):
        assert literal in text, literal
    assert sum(len(p.images) for p in reader.pages) == 0  # the letterhead logo is vector; nothing was fetched as an image


def test_renderer_fetches_only_listed_key_images(storage):
    images = put_key_images(storage, n=1)
    listed = images[0]["png_key"]
    unlisted, _ = storage.put_bytes(render_frame(testdata("CT_small.dcm"), 0, center=0, width=100))
    not_png, _ = storage.put_bytes(b"%PDF-1.7 not an image")
    fetcher = LetterURLFetcher(storage, [listed, not_png])
    assert fetcher.fetch(f"keyimage:{listed}").read().startswith(b"\x89PNG")
    for url in (f"keyimage:{unlisted}", f"keyimage:{not_png}", "keyimage:../../etc/passwd", "file:///etc/passwd",
                "http://evil.example/x.png"):
        with pytest.raises(RefusedURLError):
            fetcher.fetch(url)
    assert fetcher.served == [f"keyimage:{listed}"]
    # Even in the template, a context can only name keys that its own key_images list.
    from tests.unit.test_letter_render import make_context

    ctx = make_context(key_images=images)
    ctx["opinion"]["rationale"] = f'<img src="keyimage:{unlisted}">'
    fetcher = LetterURLFetcher(storage, [listed])
    render_letter_pdf(ctx, url_fetcher=fetcher)
    assert fetcher.served == ["static:/img/letterhead-logo.svg", f"keyimage:{listed}"] and fetcher.refused == []
