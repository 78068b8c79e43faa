"""The reviewer's opinion through the web: drafting, concurrent edits, signing, the letter, and the
request-level protections (CSRF, security headers, session cookie, view auditing)."""
from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from config import TestConfig
from review_portal import create_app
from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case
from review_portal.db import session as db_session
from review_portal.letters.models import Letter
from review_portal.opinions.models import Opinion
from review_portal.opinions.services import OpinionDraft, save_draft
from tests.conftest import NOW, PASSWORD, totp_now

DRAFT = {
    "diagnosis_concordance": "refined", "plan_concordance": "modify",
    "reviewer_diagnosis": "IDC grade 3, HER2 equivocal.", "recommended_plan": "Neoadjuvant chemotherapy first.",
    "rationale": "Tumour size and nodal status favour systemic therapy first.", "further_tests": "HER2 ISH.",
}


def drafted_case(db, make_case, users):
    """An accepted case whose reviewer has saved a complete draft: what the signing step starts from."""
    case = make_case("in_review")
    save_draft(db, case, OpinionDraft(**DRAFT), based_on_version=0, by=users["reviewer"], ip="127.0.0.1", now=NOW)
    db.commit()
    return case


def opinion_of(db, case_id) -> Opinion | None:
    db.expire_all()
    return db.scalar(select(Opinion).where(Opinion.case_id == case_id))


def status_of(db, case_id) -> str:
    db.expire_all()
    return db.get(Case, case_id).status


def version_on_page(html: str) -> str:
    match = re.search(r'name="version" type="hidden" value="([^"]*)"', html) or \
        re.search(r'type="hidden" name="version" value="([^"]*)"', html) or \
        re.search(r'id="version" name="version" type="hidden" value="([^"]*)"', html)
    assert match, "version field missing from the opinion form"
    return match.group(1)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no csrf_token in the form"
    return match.group(1)


# --------------------------------------------------------------------------- drafting


def test_reviewer_saves_a_draft(db, make_case, login_as):
    case = make_case("in_review")
    cid = case.id
    client = login_as("reviewer")
    page = client.get(f"/cases/{cid}/opinion")
    assert page.status_code == 200 and version_on_page(page.get_data(as_text=True)) == "0"  # 0: no draft exists yet
    r = client.post(f"/cases/{cid}/opinion", data={**DRAFT, "version": ""})
    assert r.status_code == 302 and r.headers["Location"] == f"/cases/{cid}/opinion"
    opinion = opinion_of(db, cid)
    assert opinion.status == "draft" and opinion.rationale == DRAFT["rationale"]
    assert opinion.diagnosis_concordance == "refined" and opinion.further_tests == "HER2 ISH."
    assert status_of(db, cid) == "in_review"
    # The form now carries the saved version for the next save.
    html = client.get(f"/cases/{cid}/opinion").get_data(as_text=True)
    assert version_on_page(html) == str(opinion.version)
    assert "Neoadjuvant chemotherapy first." in html


def test_a_save_from_a_stale_form_is_409_and_keeps_the_newer_text(db, make_case, login_as):
    case = make_case("in_review")
    cid = case.id
    tab_a, tab_b = login_as("reviewer"), login_as("reviewer")
    tab_a.post(f"/cases/{cid}/opinion", data={**DRAFT, "version": ""})
    loaded = version_on_page(tab_a.get(f"/cases/{cid}/opinion").get_data(as_text=True))
    assert loaded.isdigit()
    # Both tabs open the same version; tab A saves first.
    assert tab_a.post(f"/cases/{cid}/opinion", data={**DRAFT, "rationale": "From tab A.", "version": loaded}).status_code == 302
    r = tab_b.post(f"/cases/{cid}/opinion", data={**DRAFT, "rationale": "From tab B.", "version": loaded})
    assert r.status_code == 409
    assert "changed elsewhere" in r.get_data(as_text=True)
    assert opinion_of(db, cid).rationale == "From tab A."


def test_an_unknown_concordance_value_is_400(db, make_case, login_as):
    case = make_case("in_review")
    cid = case.id
    r = login_as("reviewer").post(f"/cases/{cid}/opinion", data={**DRAFT, "plan_concordance": "shrug"})
    assert r.status_code == 400
    assert opinion_of(db, cid) is None
    assert status_of(db, cid) == "in_review"
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "opinion.draft_saved", AuditEvent.case_id == cid)) == 0


def test_an_offer_must_be_accepted_before_drafting(db, make_case, login_as):
    case = make_case("assigned")
    cid = case.id
    reviewer = login_as("reviewer")
    assert reviewer.get(f"/cases/{cid}").status_code == 200  # the offered reviewer sees the case to decide
    assert reviewer.get(f"/cases/{cid}/opinion").status_code == 403
    assert reviewer.post(f"/cases/{cid}/opinion", data={**DRAFT, "version": "0"}).status_code == 403
    assert opinion_of(db, cid) is None
    assert status_of(db, cid) == "assigned"


@pytest.mark.parametrize("who, status", [("referring", 403), ("coordinator", 403), ("other_reviewer", 404),
                                         ("radiologist", 404)])
def test_only_the_assigned_reviewer_drafts(db, make_case, login_as, who, status):
    case = make_case("in_review")
    cid = case.id
    assert login_as(who).post(f"/cases/{cid}/opinion", data=DRAFT).status_code == status
    assert opinion_of(db, cid) is None


# --------------------------------------------------------------------------- signing


def test_sign_with_a_wrong_password_is_400_and_stays_draft(db, users, make_case, login_as):
    case = drafted_case(db, make_case, users)
    cid = case.id
    r = login_as("reviewer").post(f"/cases/{cid}/opinion/sign", data={"password": "not-my-password", "attest": "y"})
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    # The reviewer stays on the opinion form, the message beside the password field, the draft still there.
    assert 'id="sign-form"' in html and "password is not correct" in html
    assert html.index("password is not correct") > html.index('id="sign-form"')
    assert 'value="not-my-password"' not in html
    opinion = opinion_of(db, cid)
    assert opinion.status == "draft" and opinion.signed_at is None
    assert status_of(db, cid) == "in_review"
    assert db.scalar(select(func.count()).select_from(Letter)) == 0


def test_a_refused_signature_attempt_is_kept_in_the_audit_trail(db, users, make_case, login_as):
    """sign_opinion records 'opinion.sign_refused' before refusing; a password-guessing attempt on a
    signature must survive the request, like a failed login does."""
    case = drafted_case(db, make_case, users)
    cid = case.id
    login_as("reviewer").post(f"/cases/{cid}/opinion/sign", data={"password": "guess-number-one", "attest": "y"})
    db.expire_all()
    rows = db.scalars(select(AuditEvent).where(AuditEvent.action == "opinion.sign_refused",
                                               AuditEvent.case_id == cid)).all()
    assert [r.actor_id for r in rows] == [users["reviewer"].id]


def test_sign_without_attestation_is_400(db, users, make_case, login_as):
    case = drafted_case(db, make_case, users)
    cid = case.id
    r = login_as("reviewer").post(f"/cases/{cid}/opinion/sign", data={"password": PASSWORD})
    assert r.status_code == 400 and "attestation" in r.get_data(as_text=True)
    assert opinion_of(db, cid).status == "draft"


def test_signing_delivers_a_letter_only_the_case_parties_can_download(db, users, make_case, login_as):
    case = drafted_case(db, make_case, users)
    cid, ref = case.id, case.reference
    reviewer = login_as("reviewer")
    r = reviewer.post(f"/cases/{cid}/opinion/sign", data={"password": PASSWORD, "attest": "y"})
    assert r.status_code == 302 and r.headers["Location"] == f"/cases/{cid}"
    assert status_of(db, cid) == "letter_delivered"
    opinion = opinion_of(db, cid)
    assert opinion.status == "signed" and opinion.signed_at is not None and len(opinion.content_sha256) == 64
    [letter] = db.scalars(select(Letter).where(Letter.case_id == cid)).all()
    url = f"/cases/{cid}/letters/{letter.id}.pdf"

    referring = login_as("referring")
    for client in (referring, reviewer):
        r = client.get(url)
        assert r.status_code == 200
        assert r.mimetype == "application/pdf" and r.data.startswith(b"%PDF-")
        assert "attachment" in r.headers["Content-Disposition"] and ref in r.headers["Content-Disposition"]
    assert login_as("other_referring").get(url).status_code == 404
    db.expire_all()
    assert db.get(Letter, letter.id).first_downloaded_at is not None
    # The case page links the letter for the referring physician.
    assert url in referring.get(f"/cases/{cid}").get_data(as_text=True)


def test_after_signing_the_opinion_cannot_be_changed(db, make_case, login_as):
    case = make_case("letter_delivered")
    cid = case.id
    before = opinion_of(db, cid)
    frozen = (before.rationale, before.recommended_plan, before.version, before.content_sha256)
    client = login_as("reviewer")
    r = client.post(f"/cases/{cid}/opinion", data={**DRAFT, "rationale": "Edited after signing.",
                                                      "version": str(before.version)})
    assert r.status_code == 403
    r = client.post(f"/cases/{cid}/opinion/sign", data={"password": PASSWORD, "attest": "y"})
    assert r.status_code == 403
    after = opinion_of(db, cid)
    assert (after.rationale, after.recommended_plan, after.version, after.content_sha256) == frozen
    assert db.scalar(select(func.count()).select_from(Letter).where(Letter.case_id == cid)) == 1
    assert status_of(db, cid) == "letter_delivered"


# --------------------------------------------------------------------------- CSRF


def test_csrf_token_is_required_when_enabled(app, db, make_case, users):
    case = make_case("in_review")
    cid = case.id
    db.commit()
    db_session.remove()
    csrf_app = create_app(TestConfig, WTF_CSRF_ENABLED=True, DATABASE_URL=app.config["DATABASE_URL"],
                          STORAGE_DIR=app.config["STORAGE_DIR"])
    try:
        client = csrf_app.test_client()
        login_page = client.get("/login").get_data(as_text=True)
        token = csrf_token(login_page)
        # Even logging in needs the token.
        assert client.post("/login", data={"email": users["reviewer"].email, "password": PASSWORD}).status_code == 400
        r = client.post("/login", data={"email": users["reviewer"].email, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 302 and r.headers["Location"].endswith("/login/mfa")
        # ...and so does its second step.
        mfa_token = csrf_token(client.get("/login/mfa").get_data(as_text=True))
        assert client.post("/login/mfa", data={"code": totp_now()}).status_code == 400
        r = client.post("/login/mfa", data={"code": totp_now(), "csrf_token": mfa_token})
        assert r.status_code == 302 and "/login" not in r.headers["Location"]

        r = client.post(f"/cases/{cid}/opinion", data={**DRAFT, "version": ""})
        assert r.status_code == 400
        assert "form expired or came from elsewhere" in r.get_data(as_text=True)
        r = client.post(f"/cases/{cid}/opinion", data={**DRAFT, "version": "", "csrf_token": "forged"})
        assert r.status_code == 400
        with csrf_app.app_context():
            s = db_session()
            assert s.scalar(select(Opinion).where(Opinion.case_id == cid)) is None
            assert s.get(Case, cid).status == "in_review"
            db_session.remove()

        # Control: the same request with the form's own token goes through.
        form_token = csrf_token(client.get(f"/cases/{cid}/opinion").get_data(as_text=True))
        r = client.post(f"/cases/{cid}/opinion", data={**DRAFT, "version": "", "csrf_token": form_token})
        assert r.status_code == 302
        with csrf_app.app_context():
            assert db_session().scalar(select(Opinion).where(Opinion.case_id == cid)) is not None
            db_session.remove()
    finally:
        db_session.remove()
        csrf_app.extensions["db_engine"].dispose()


# --------------------------------------------------------------------------- headers, cookies, audit of views


def assert_security_headers(response):
    csp = response.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("X-Frame-Options") == "DENY"


def test_security_headers_on_public_private_and_error_pages(make_case, client, login_as):
    case = make_case("in_review")
    cid = case.id
    assert_security_headers(client.get("/login"))
    assert_security_headers(client.get("/healthz"))
    reviewer = login_as("reviewer")
    page = reviewer.get(f"/cases/{cid}")
    assert page.status_code == 200
    assert_security_headers(page)
    assert "no-store" in page.headers["Cache-Control"]
    missing = reviewer.get("/cases/424242")
    assert missing.status_code == 404
    assert_security_headers(missing)
    refused = reviewer.post(f"/cases/{cid}/opinion", data={**DRAFT, "plan_concordance": "shrug"})
    assert refused.status_code == 400
    assert_security_headers(refused)


def test_session_cookie_is_httponly_and_samesite_lax(users, client):
    r = client.post("/login", data={"email": users["referring"].email, "password": PASSWORD})
    assert r.status_code == 302
    cookies = [c for c in r.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, r.headers.getlist("Set-Cookie")
    for cookie in cookies:
        attributes = {part.strip().lower() for part in cookie.split(";")}
        assert "httponly" in attributes
        assert "samesite=lax" in attributes


def test_wrong_login_is_401_and_sets_no_session(users, client):
    r = client.post("/login", data={"email": users["referring"].email, "password": "wrong-password-x"})
    assert r.status_code == 401
    assert client.get("/cases").status_code == 302


def test_every_case_view_is_audited_with_user_and_ip(db, users, make_case, login_as):
    case = make_case("in_review")
    cid = case.id
    reviewer, coordinator, stranger = login_as("reviewer"), login_as("coordinator"), login_as("other_referring")

    def viewed():
        db.expire_all()
        return db.scalars(select(AuditEvent).where(AuditEvent.action == "case.viewed", AuditEvent.case_id == cid)
                          .order_by(AuditEvent.id)).all()

    assert viewed() == []
    assert reviewer.get(f"/cases/{cid}", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert reviewer.get(f"/cases/{cid}", environ_base={"REMOTE_ADDR": "10.1.2.4"}).status_code == 200
    assert coordinator.get(f"/cases/{cid}", environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 200
    # A refused look is not a view of the case.
    assert stranger.get(f"/cases/{cid}", environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code == 404

    rows = viewed()
    assert [(r.actor_id, r.actor_email, r.source_ip) for r in rows] == [
        (users["reviewer"].id, users["reviewer"].email, "10.1.2.3"),
        (users["reviewer"].id, users["reviewer"].email, "10.1.2.4"),
        (users["coordinator"].id, users["coordinator"].email, "192.0.2.9"),
    ]
    assert all(r.object_type == "case" and r.object_id == str(cid) for r in rows)
    assert rows[0].at <= rows[1].at <= rows[2].at


def test_preview_is_the_letter_marked_draft_without_a_code_and_nothing_is_issued(db, users, make_case, login_as):
    case = drafted_case(db, make_case, users)
    cid = case.id
    reviewer = login_as("reviewer")
    r = reviewer.get(f"/cases/{cid}/opinion/preview.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.headers["Cache-Control"] == "no-store"
    reader = PdfReader(io.BytesIO(r.data))
    pages = [p.extract_text() for p in reader.pages]
    assert all("DRAFT" in text for text in pages)  # every page, not only the first
    text = "".join(pages)
    assert "Verification code" not in text and "Not signed yet" in text
    assert db.scalar(select(func.count()).select_from(Letter)) == 0  # nothing stored or delivered
    assert opinion_of(db, cid).status == "draft"
    db.expire_all()
    assert db.scalar(select(AuditEvent).where(AuditEvent.case_id == cid, AuditEvent.action == "letter.previewed"))
    # Only the reviewer who may sign previews; others are refused like the opinion page itself.
    assert login_as("referring").get(f"/cases/{cid}/opinion/preview.pdf").status_code == 403
    assert login_as("other_reviewer").get(f"/cases/{cid}/opinion/preview.pdf").status_code == 404
