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
from review_portal.uploads import UploadedFile
from review_portal.workflow.referrals import submit_referral
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
    exempt_views = app.extensions["csrf"]._exempt_views
    exempt = set()
    for rule in posts:
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **{a: 1 if a != "token" else "t" for a in rule.arguments})
        r = c.post(url, data={"reason": "x" * 30})
        view = app.view_functions[rule.endpoint]
        exempt_blueprints = {bp.name for bp in app.extensions["csrf"]._exempt_blueprints}
        if f"{view.__module__}.{view.__name__}" in exempt_views or rule.endpoint.split(".")[0] in exempt_blueprints:
            exempt.add(rule.endpoint.split(".")[0] + ".*" if rule.endpoint.startswith("api.") else rule.endpoint)
            # Exempt from the form token is not open: without a credential it is refused before anything happens.
            assert r.status_code == 401, (rule.endpoint, r.status_code)
            continue
        assert r.status_code == 400 and b"form expired" in r.data, (rule.endpoint, r.status_code)
    # The deliberate exemptions: STOW-RS (its clients are programs) and the bearer-token-only JSON API; see
    # review_portal/__init__.py for why each is safe. A new one must be argued there and added here.
    assert exempt == {"dicomweb.store_instances", "api.*"}


def test_security_headers_on_every_page(client, login_as):
    for r in (client.get("/login"), login_as("referring").get("/cases")):
        csp = r.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in r.headers  # only in production (see test_authentication)
        assert r.headers["X-Request-ID"]


def test_script_payloads_are_inert_on_every_page_and_in_the_letter(app, db, storage, users, login_as, tmp_path):
    """Every free-text field a person types reaches pages (and the letter) as text: the referral, the opinion,
    messages, requests for information and their answers, follow-up questions and answers, addenda and
    key-image captions."""
    import shutil

    from review_portal.deadlines import policy_from_config
    from review_portal.workflow.assignments import accept_offer
    from review_portal.cases.services import HistoryItem
    from review_portal.imaging.services import mark_key_image, series_of_case
    from review_portal.workflow.conversations import answer_follow_up, answer_information_request
    from review_portal.messaging.services import ask_follow_up, post_message, request_information
    from review_portal.opinions.services import OpinionDraft, save_draft
    from review_portal.workflow.signing import add_addendum, sign_and_issue_letter
    from tests.conftest import confirm_test_scans, testdata

    scan = tmp_path / "ct.dcm"
    shutil.copy(testdata("CT_small.dcm"), scan)
    case, _ = submit_referral(db, storage, referral(
        patient_name=XSS, patient_mrn=XSS[:60], question=XSS, diagnosis_in_question=XSS, plan_in_question=XSS,
        history=[HistoryItem(NOW.date(), "pathology", XSS)]), documents=[], scans=[UploadedFile("ct.dcm", scan)],
        by=users["referring"], ip="127.0.0.1", now=NOW, turnaround_days=TURNAROUND)
    reviewer, referring = case.reviewer, users["referring"]
    at = lambda minutes: {"ip": "127.0.0.1", "now": NOW + timedelta(minutes=minutes)}  # noqa: E731
    accept_offer(db, case.active_assignment, by=reviewer, **at(1))
    [series] = series_of_case(db, case.id)
    mark_key_image(db, storage, case, series, slice_index=0, center=None, width=None, caption=XSS, by=reviewer, **at(2))
    post_message(db, case, body=XSS, by=referring, **at(3))
    request_information(db, case, items=["other"], detail=XSS, by=reviewer, **at(4))
    answer_information_request(db, storage, case, answer=XSS, policy=policy_from_config(app.config), by=referring, **at(5))
    save_draft(db, case, OpinionDraft("refined", "modify", XSS, XSS, XSS, XSS), based_on_version=None,
               by=reviewer, **at(6))
    confirm_test_scans(db, case, users["coordinator"])  # CT_small names its own patient
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                          by=reviewer, **at(60))
    follow_up = ask_follow_up(db, case, question=XSS, max_questions=3, by=referring, **at(70))
    answer_follow_up(db, storage, case, follow_up.id, answer=XSS, institution=INSTITUTION, password=PASSWORD,
                     attested=True, by=reviewer, **at(80))
    add_addendum(db, storage, case, XSS, reason=XSS, institution=INSTITUTION, by=reviewer, **at(90))
    db.commit()
    case_pages = (f"/cases/{case.id}", f"/cases/{case.id}/letters", f"/cases/{case.id}/viewer",
                  f"/cases/{case.id}/series/{series.id}", "/cases", "/notifications")
    pages = [(role, path) for role in ("referring", "reviewer", "coordinator", "admin") for path in case_pages]
    pages += [("coordinator", "/dashboard"), ("admin", "/admin/audit?patient=" + "<script>")]
    for role, path in pages:
        r = login_as(role).get(path)
        body = r.get_data(as_text=True)
        assert r.status_code == 200, (role, path, r.status_code)
        assert "<script>alert(1)" not in body and "<img src=x" not in body, (role, path)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    page = login_as("referring").get(f"/cases/{case.id}").get_data(as_text=True)
    assert page.count(escaped) >= 10  # referral, opinion, message, request and answer, follow-up... all shown, as text
    assert escaped in login_as("referring").get(f"/cases/{case.id}/letters").get_data(as_text=True)  # addendum reason
    # The viewer gets captions as JSON data and writes them with textContent (static/js/viewer.js).
    info = login_as("reviewer").get(f"/cases/{case.id}/series/{series.id}.json")
    assert info.mimetype == "application/json" and info.json["key_images"][0]["caption"] == XSS
    letters = db.scalars(select(Letter).where(Letter.case_id == case.id).order_by(Letter.version)).all()
    assert len(letters) == 3  # the signed opinion, the follow-up answer, the addendum
    for letter in letters:
        pdf = storage.read_bytes(letter.blob_key)
        assert b"/JavaScript" not in pdf and b"/JS " not in pdf and b"/OpenAction" not in pdf
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
        assert "<script>alert(1)</script>" in text  # printed as text, not interpreted
    # The last version carries the opinion, both addenda and the key image caption, all as text.
    assert text.count("<script>alert(1)</script>") >= 8


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
