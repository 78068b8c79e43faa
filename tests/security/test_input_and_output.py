"""CSRF, security headers, stored XSS (pages and PDF), uploads by content, error pages (ASVS V4, V5, V7, V12, V13, V14)."""
from __future__ import annotations

import io
import logging
import re
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from config import TestConfig
from review_portal import create_app
from review_portal.cases.services import UploadedFile, submit_referral
from review_portal.db import create_all
from review_portal.errors import InvalidInput
from review_portal.letters.models import Letter
from tests.conftest import INSTITUTION, NOW, PASSWORD, TURNAROUND, referral

XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'>'


def test_every_post_route_refuses_a_request_without_csrf_token(tmp_path):
    app = create_app(TestConfig, WTF_CSRF_ENABLED=True, DATABASE_URL=f"sqlite:///{tmp_path / 'csrf.db'}",
                     STORAGE_DIR=str(tmp_path / "s"))
    create_all(app.extensions["db_engine"])
    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert c.post("/login", data={"email": "a@b.c", "password": "x"}).status_code == 400  # no token: refused before checking
    assert c.post("/login", data={"email": "a@b.c", "password": "x", "csrf_token": token}).status_code == 401
    posts = [r for r in app.url_map.iter_rules() if "POST" in (r.methods or ())]
    assert len(posts) > 10
    for rule in posts:
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **{a: 1 if a != "token" else "t" for a in rule.arguments})
        r = c.post(url, data={"reason": "x" * 30})
        if rule.endpoint.startswith("api.") or rule.endpoint == "dicomweb.store_instances":
            # CSRF-exempt by design: the API takes only bearer tokens, and STOW-RS only multipart/related
            # (both explained in create_app). Without a credential they refuse before anything else.
            assert r.status_code == 401, (rule.endpoint, r.status_code)
            continue
        assert r.status_code == 400 and b"form expired" in r.data, (rule.endpoint, r.status_code)


def test_security_headers_on_every_page(client, login_as):
    for r in (client.get("/login"), login_as("referring").get("/cases")):
        csp = r.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in r.headers  # only in production (see test_authentication)
        assert r.headers["X-Request-ID"]


def test_script_payloads_are_inert_on_every_page_and_in_the_letter(app, db, storage, users, login_as):
    from review_portal.opinions.services import OpinionDraft, save_draft, sign_and_issue_letter

    from review_portal.cases.services import HistoryItem

    case, _ = submit_referral(db, storage, referral(
        patient_name=XSS, patient_mrn=XSS[:60], question=XSS, diagnosis_in_question=XSS, plan_in_question=XSS,
        history=[HistoryItem(NOW.date(), "pathology", XSS)]), documents=[], scans=[], by=users["referring"],
        ip="127.0.0.1", now=NOW, turnaround_days=TURNAROUND)
    save_draft(db, case, OpinionDraft("refined", "modify", XSS, XSS, XSS, XSS), based_on_version=None,
               by=case.reviewer, ip="127.0.0.1", now=NOW)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                          by=case.reviewer, ip="127.0.0.1", now=NOW + timedelta(hours=1))
    db.commit()
    pages = [(role, path) for role in ("referring", "reviewer", "coordinator", "admin")
             for path in (f"/cases/{case.id}", "/cases")] + [("admin", "/admin/audit?patient=" + "<script>")]
    for role, path in pages:
        body = login_as(role).get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in body and "<img src=x" not in body, (role, path)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in login_as("referring").get(f"/cases/{case.id}").get_data(as_text=True)
    letter = db.scalar(select(Letter).where(Letter.case_id == case.id))
    pdf = storage.read_bytes(letter.blob_key)
    assert b"/JavaScript" not in pdf and b"/JS " not in pdf and b"/OpenAction" not in pdf
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "<script>alert(1)</script>" in text  # printed as text, not interpreted


def _png(path):
    from PIL import Image

    Image.new("RGB", (4, 4), "white").save(path, "PNG")
    return path


def test_documents_accepted_by_content_and_served_as_downloads_of_their_real_type(app, db, storage, users, tmp_path, login_as):
    html = tmp_path / "report.pdf"
    html.write_text("<html><script>alert(1)</script></html>")
    with pytest.raises(InvalidInput):
        submit_referral(db, storage, referral(), documents=[UploadedFile("report.pdf", html)], scans=[],
                        by=users["referring"], ip="1", now=NOW, turnaround_days=TURNAROUND)
    db.rollback()
    png = _png(tmp_path / "scan-photo.html")  # an image whose name claims HTML
    case, _ = submit_referral(db, storage, referral(), documents=[UploadedFile("../../etc/scan-photo.html", png)], scans=[],
                              by=users["referring"], ip="1", now=NOW, turnaround_days=TURNAROUND)
    db.commit()
    doc = case.documents[0]
    assert doc.content_type == "image/png" and doc.filename == "scan-photo.png"
    r = login_as("referring").get(f"/cases/{case.id}/documents/{doc.id}")
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert r.headers["Content-Disposition"].startswith("attachment") and r.headers["X-Content-Type-Options"] == "nosniff"


def test_errors_show_a_request_id_that_is_in_the_log_and_nothing_internal(app, login_as, caplog):
    @app.get("/__boom")
    def _boom():
        raise RuntimeError("SELECT * FROM users WHERE secret; /srv/portal/instance/portal.db")

    c = login_as("referring")
    with caplog.at_level(logging.ERROR):
        r = c.get("/__boom")
    body = r.get_data(as_text=True)
    assert r.status_code == 500
    for leak in ("Traceback", "SELECT", "/srv/portal", "RuntimeError"):
        assert leak not in body
    rid = r.headers["X-Request-ID"]
    assert rid in body and rid in caplog.text and "Traceback" in caplog.text
    missing = c.get("/cases/987654")
    assert missing.status_code == 404 and missing.headers["X-Request-ID"] in missing.get_data(as_text=True)
