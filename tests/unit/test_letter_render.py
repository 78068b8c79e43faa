"""Tests for review_portal.letters.render: real PDFs, read back with pypdf."""

from __future__ import annotations

import copy
import io
import re

import jinja2
import pytest
from pypdf import PdfReader
from weasyprint import HTML

from review_portal.letters import render
from review_portal.letters.render import (
    RefusedURLError,
    StaticOnlyURLFetcher,
    build_letter_html,
    render_letter_pdf,
)

BASE_CONTEXT = {
    "institution": {
        "name": "Northbridge Comprehensive Cancer Centre",
        "address_lines": ["1200 Harbour Road", "Northbridge NB4 2QT"],
        "phone": "+44 20 7946 0000",
        "logo": "img/letterhead-logo.svg",
    },
    "letter_date": "26 November 2026",
    "case_reference": "SO-2026-0001",
    "version": 1,
    "recipient": {
        "name": "Dr Jane Roe",
        "institution": "St Elsewhere General Hospital",
        "address_lines": ["Department of Surgery", "14 Market Street"],
    },
    "patient": {
        "name": "Maria Example",
        "date_of_birth": "1961-03-14",
        "sex": "Female",
        "mrn": "MRN-00451287",
    },
    "review_type_label": "Oncology opinion",
    "cancer_site_label": "Breast",
    "question": "Is adjuvant chemotherapy indicated?\nShould radiotherapy follow surgery?",
    "diagnosis_in_question": "Invasive ductal carcinoma, left breast, pT1c N0.",
    "plan_in_question": "Adjuvant chemotherapy then radiotherapy.",
    "records_reviewed": [
        {"kind": "Report", "description": "Histopathology report", "date": "2026-10-02"},
        {"kind": "Imaging", "description": "Bilateral mammogram", "date": "2026-09-12"},
        {"kind": "History", "description": "Referral letter\nand clinic notes",
         "date": "2026-10-20"},
    ],
    "opinion": {
        "diagnosis_concordance_label": "Diagnosis refined",
        "plan_concordance_label": "Modify plan",
        "reviewer_diagnosis": "Invasive carcinoma NST, grade 2, ER+, HER2-.",
        "recommended_plan": "Obtain a genomic recurrence score first.",
        "rationale": "Small, node-negative tumour.\nChemotherapy benefit depends on genomic risk.",
        "further_tests": "Genomic assay.",
    },
    "reviewer": {
        "name": "Dr Ada Stone",
        "credentials": "MD",
        "specialty_label": "Medical oncology",
        "institution": "Northbridge Comprehensive Cancer Centre",
    },
    "signed_at": "26 November 2026, 14:03 UTC",
    "verification_code": "7KQ2-M9XD-4HTA",
}

SCRIPT = "<script>alert(1)</script>"
EVIL_IMG = '<img src="http://evil.example/x">'


def make_context(**overrides) -> dict:
    ctx = copy.deepcopy(BASE_CONTEXT)
    ctx.update(overrides)
    return ctx


def read_pdf(pdf: bytes) -> tuple[PdfReader, list[str]]:
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    return reader, [page.extract_text() or "" for page in reader.pages]


def normalise(text: str) -> str:
    """Collapse whitespace so line wrapping does not affect assertions."""
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def basic_render():
    fetcher = StaticOnlyURLFetcher()
    pdf = render_letter_pdf(make_context(), url_fetcher=fetcher)
    reader, pages = read_pdf(pdf)
    return pdf, reader, pages, fetcher


# --------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------

def test_pdf_contains_key_content(basic_render):
    _, _, pages, _ = basic_render
    text = normalise("\n".join(pages))
    for expected in (
        "Maria Example",
        "Dr Ada Stone",
        "Diagnosis refined",
        "Modify plan",
        "SO-2026-0001",
        "MRN-00451287",
        "1961-03-14",
        "Dear Dr Jane Roe,",
        "Is adjuvant chemotherapy indicated?",
        "Should radiotherapy follow surgery?",
        "Histopathology report",
        "Electronically signed 26 November 2026, 14:03 UTC",
        "Medical oncology",
    ):
        assert expected in text, expected


def test_multiline_text_keeps_line_breaks(basic_render):
    _, _, pages, _ = basic_render
    lines = [line.strip() for line in "\n".join(pages).splitlines()]
    assert "Is adjuvant chemotherapy indicated?" in lines
    assert "Should radiotherapy follow surgery?" in lines


def test_footer_on_first_page(basic_render):
    _, _, pages, _ = basic_render
    total = len(pages)
    assert f"Page 1 of {total}" in pages[0]
    footer = normalise(pages[0])
    assert "Case SO-2026-0001 · Verification code 7KQ2-M9XD-4HTA · Page 1 of" in footer


def test_logo_served_from_static_only(basic_render):
    _, _, _, fetcher = basic_render
    assert fetcher.served == ["static:/img/letterhead-logo.svg"]
    assert fetcher.refused == []


def test_pdf_metadata(basic_render):
    _, reader, _, _ = basic_render
    meta = reader.metadata
    assert "SO-2026-0001" in meta.title
    assert meta.title == "Second opinion – SO-2026-0001"
    assert meta.author == "Dr Ada Stone"
    assert "SO-2026-0001" in meta.subject


def test_pdfa_variant_recorded(basic_render):
    _, reader, _, _ = basic_render
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    if render.LAST_PDF_VARIANT == "pdf/a-3b":
        assert b'pdfaid:part="3"' in xmp
        assert b'pdfaid:conformance="B"' in xmp
        assert "/OutputIntents" in reader.trailer["/Root"]
    else:  # pragma: no cover - fallback path documented in render.py
        pytest.skip("PDF/A-3b not produced by this WeasyPrint build")


def test_optional_fields_may_be_empty():
    ctx = make_context(records_reviewed=[])
    ctx["opinion"]["further_tests"] = ""
    del ctx["institution"]["logo"]
    html = build_letter_html(ctx)
    assert "No further tests are recommended." in html
    assert "No records were listed" in html
    assert "<img" not in html


def test_none_values_render_as_blank_not_none():
    ctx = make_context(diagnosis_in_question=None, plan_in_question=None)
    ctx["opinion"]["further_tests"] = None
    ctx["reviewer"]["credentials"] = None
    ctx["patient"]["sex"] = None
    html = build_letter_html(ctx)
    assert "None" not in html
    assert "Not stated in the referral." in html


def test_missing_required_field_raises():
    ctx = make_context()
    del ctx["patient"]["name"]
    with pytest.raises(jinja2.UndefinedError):
        build_letter_html(ctx)


# --------------------------------------------------------------------------
# Escaping / hostile input
# --------------------------------------------------------------------------

def hostile_context() -> dict:
    ctx = make_context(question=f"Please review {SCRIPT}\nand {EVIL_IMG}")
    ctx["patient"]["name"] = f"Eve {SCRIPT}"
    ctx["opinion"]["rationale"] = f"Rationale {EVIL_IMG}"
    ctx["records_reviewed"][0]["description"] = EVIL_IMG
    ctx["recipient"]["name"] = '<a href="http://evil.example/y">Dr X</a>'
    return ctx


def test_html_escapes_user_text():
    html = build_letter_html(hostile_context())
    assert "<script>" not in html
    assert "evil.example/x\">" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=&#34;http://evil.example/x&#34;&gt;" in html
    # The only <img> is the letterhead logo.
    assert re.findall(r"<img\b[^>]*>", html) == [
        '<img class="logo" src="static:/img/letterhead-logo.svg" alt="Northbridge Comprehensive Cancer Centre logo">']


def test_hostile_text_rendered_inert_in_pdf():
    fetcher = StaticOnlyURLFetcher()
    pdf = render_letter_pdf(hostile_context(), url_fetcher=fetcher)
    _, pages = read_pdf(pdf)
    text = "\n".join(pages)
    assert SCRIPT in text
    assert EVIL_IMG in text
    assert '<a href="http://evil.example/y">Dr X</a>' in text
    # Nothing but the logo was requested; evil.example never reached the fetcher.
    assert fetcher.served == ["static:/img/letterhead-logo.svg"]
    assert fetcher.refused == []
    assert not any("evil" in url for url in fetcher.served + fetcher.refused)


def test_weasyprint_uses_fetcher_and_it_refuses_foreign_urls():
    """Defence in depth: even markup that did reach WeasyPrint cannot fetch."""
    fetcher = StaticOnlyURLFetcher()
    markup = (
        '<img src="http://evil.example/x">'
        '<img src="file:///etc/passwd">'
        '<img src="static:/../config.py">'
        '<img src="static:/img/letterhead-logo.svg">'
        '<link rel="stylesheet" href="https://evil.example/s.css">'
        "<p>hello</p>"
    )
    pdf = HTML(string=markup, url_fetcher=fetcher).write_pdf()
    assert pdf.startswith(b"%PDF-")
    assert fetcher.served == ["static:/img/letterhead-logo.svg"]
    assert set(fetcher.refused) == {
        "http://evil.example/x",
        "file:///etc/passwd",
        "static:/../config.py",
        "https://evil.example/s.css",
    }


def test_escaping_logo_path_is_refused_and_pdf_still_renders():
    ctx = make_context()
    ctx["institution"]["logo"] = "../config.py"
    fetcher = StaticOnlyURLFetcher()
    pdf = render_letter_pdf(ctx, url_fetcher=fetcher)
    assert pdf.startswith(b"%PDF-")
    assert fetcher.served == []
    assert fetcher.refused == ["static:/../config.py"]


# --------------------------------------------------------------------------
# URL fetcher, directly
# --------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "http://evil.example/x",
    "https://evil.example/x.svg",
    "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'/>",
    "ftp://evil.example/x",
    "static:/../config.py",
    "static:/img/../../config.py",
    "static:/img/%2e%2e/%2e%2e/config.py",
    "static:///etc/passwd",
    "static://evil.example/img/letterhead-logo.svg",
    "static:/",
    "static:/img/does-not-exist.svg",
    "static:/img",
    "img/letterhead-logo.svg",
    "/etc/passwd",
    "STATIC:/img/..\\..\\config.py",
])
def test_fetcher_refuses(url):
    fetcher = StaticOnlyURLFetcher()
    with pytest.raises(RefusedURLError):
        fetcher(url)
    assert fetcher.refused == [url]
    assert fetcher.served == []


def test_fetcher_refuses_symlink_out_of_static(tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    secret = tmp_path / "secret.svg"
    secret.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (static / "link.svg").symlink_to(secret)
    fetcher = StaticOnlyURLFetcher(static_root=static)
    with pytest.raises(RefusedURLError):
        fetcher.fetch("static:/link.svg")


def test_fetcher_refuses_disallowed_file_type(tmp_path):
    (tmp_path / "notes.txt").write_text("secret")
    fetcher = StaticOnlyURLFetcher(static_root=tmp_path)
    with pytest.raises(RefusedURLError):
        fetcher.fetch("static:/notes.txt")


def test_fetcher_serves_logo():
    fetcher = StaticOnlyURLFetcher()
    response = fetcher.fetch("static:/img/letterhead-logo.svg#frag")
    try:
        body = response.read()
    finally:
        response.close()
    assert response.content_type == "image/svg+xml"
    assert body == (render.STATIC_DIR / "img" / "letterhead-logo.svg").read_bytes()
    assert b"<svg" in body
    assert fetcher.served == ["static:/img/letterhead-logo.svg#frag"]


# --------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------

def test_long_rationale_paginates_with_footer_on_every_page():
    ctx = make_context()
    ctx["opinion"]["rationale"] = "\n".join(
        f"Rationale line {i}: supporting detail for the recommendation." for i in range(200))
    reader, pages = read_pdf(render_letter_pdf(ctx))
    total = len(pages)
    assert total > 1
    for number, text in enumerate(pages, start=1):
        flat = normalise(text)
        assert f"Page {number} of {total}" in flat
        assert "Case SO-2026-0001 · Verification code 7KQ2-M9XD-4HTA" in flat
    all_text = "\n".join(pages)
    assert "Rationale line 0:" in all_text and "Rationale line 199:" in all_text
    # Running header on continuation pages only.
    assert "Second opinion — Maria Example" in normalise(pages[1])
    assert "Second opinion —" not in pages[0]
