"""The opinion and letter pages through the real routes, per role, including CSRF and the public check."""
from __future__ import annotations

import base64
import io
import re

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.task import Task
from pypdf import PdfReader
from sqlalchemy import select

from config import TestConfig
from review_portal import create_app
from review_portal.audit.models import AuditEvent
from review_portal.db import create_all
from review_portal.letters.services import letters_for_case
from review_portal.opinions.services import opinion_for_case
from tests.conftest import PASSWORD

FETCH = {"X-Requested-With": "fetch", "Accept": "application/json"}
DRAFT = {"diagnosis_concordance": "confirmed", "plan_concordance": "agree", "reviewer_diagnosis": "IDC grade 2.",
         "recommended_plan": "Surgery first.", "rationale": "Concordant imaging and pathology.", "urgency": "routine"}


def test_two_tabs_autosaving_conflict_instead_of_overwriting(db, make_case, login_as):
    case = make_case("in_review")
    tab_a, tab_b = login_as("reviewer"), login_as("reviewer")
    page = tab_a.get(f"/cases/{case.id}/opinion").get_data(as_text=True)
    assert 'name="version" type="hidden" value="0"' in page and 'id="viewer-slot"' in page
    first = tab_a.post(f"/cases/{case.id}/opinion/autosave", data=DRAFT | {"version": "0"}, headers=FETCH)
    assert first.status_code == 200 and first.json["saved_label"].startswith("Draft saved")
    # Tab B was opened before any draft existed: its save must not replace tab A's.
    stale = tab_b.post(f"/cases/{case.id}/opinion/autosave", data=DRAFT | {"version": "0", "rationale": "B"}, headers=FETCH)
    assert stale.status_code == 409 and "another tab" in stale.json["error"]
    second = tab_a.post(f"/cases/{case.id}/opinion/autosave",
                        data=DRAFT | {"version": str(first.json["version"]), "rationale": "A2"}, headers=FETCH)
    assert second.status_code == 200 and second.json["version"] > first.json["version"]
    again = tab_b.post(f"/cases/{case.id}/opinion/autosave",
                       data=DRAFT | {"version": str(first.json["version"]), "rationale": "B2"}, headers=FETCH)
    assert again.status_code == 409
    db.expire_all()
    assert opinion_for_case(db, case.id).rationale == "A2"
    # Signing what another tab has since changed is refused too.
    signed = tab_b.post(f"/cases/{case.id}/opinion/sign",
                        data={"attest": "y", "password": PASSWORD, "version": str(first.json["version"])})
    assert signed.status_code == 409
    bad = tab_a.post(f"/cases/{case.id}/opinion/autosave", data=DRAFT | {"version": "x1"}, headers=FETCH)
    assert bad.status_code == 400 and "error" in bad.json


def test_autosave_after_the_session_expired_answers_json_not_a_login_page(app, make_case, users):
    case = make_case("in_review")
    anonymous = app.test_client()
    response = anonymous.post(f"/cases/{case.id}/opinion/autosave", data=DRAFT | {"version": "0"}, headers=FETCH)
    assert response.status_code == 401 and response.is_json
    # The page polls this to learn when the reviewer has logged in again; logged out it is sent to the login page.
    assert anonymous.get(f"/cases/{case.id}/opinion/token").status_code == 302


@pytest.fixture
def csrf_app(tmp_path):
    app = create_app(TestConfig, WTF_CSRF_ENABLED=True, DATABASE_URL=f"sqlite:///{tmp_path / 'csrf.db'}",
                     STORAGE_DIR=str(tmp_path / "csrf-store"))
    create_all(app.extensions["db_engine"])
    yield app
    from review_portal.db import session

    session.remove()
    app.extensions["db_engine"].dispose()


def test_autosave_with_csrf_on_needs_the_header_token(csrf_app):
    from tests.conftest import NOW, TOTP_SECRET, referral, totp_now
    from review_portal.workflow.assignments import accept_offer
    from review_portal.auth.models import Institution, Role, User
    from review_portal.auth.services import create_user
    from review_portal.workflow.referrals import submit_referral
    from review_portal.cases.disciplines import seed_disciplines
    from review_portal.db import session

    db = session()
    seed_disciplines(db)
    inst = Institution(name="Centre")
    db.add(inst)
    db.flush()
    create_user(db, email="ref@x.example", name="Ref", password=PASSWORD, role=Role.REFERRING, now=NOW, institution=None)
    reviewer = create_user(db, email="rev@x.example", name="Rev", password=PASSWORD, role=Role.REVIEWER, now=NOW,
                           institution=inst, specialty="medical_oncology", sites=["breast"])
    reviewer.totp_secret, reviewer.totp_enabled_at = TOTP_SECRET, NOW  # reviewers log in with a second factor
    referrer = db.scalar(select(User).where(User.email == "ref@x.example"))
    case, _ = submit_referral(db, csrf_app.extensions["storage"], referral(), documents=[], scans=[], by=referrer,
                              ip="127.0.0.1", now=NOW, turnaround_days=TestConfig.TURNAROUND_DAYS)
    assert case.reviewer.id == reviewer.id
    accept_offer(db, case.active_assignment, by=reviewer, ip="127.0.0.1", now=NOW)  # drafting needs an accepted offer
    db.commit()
    client = csrf_app.test_client()
    login_page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page).group(1)
    r = client.post("/login", data={"email": "rev@x.example", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("/login/mfa")
    mfa_page = client.get("/login/mfa").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', mfa_page).group(1)
    r = client.post("/login/mfa", data={"code": totp_now(), "csrf_token": token})
    assert r.status_code == 302 and "/login" not in r.headers["Location"]
    page = client.get(f"/cases/{case.id}/opinion").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    refused = client.post(f"/cases/{case.id}/opinion/autosave", data=DRAFT | {"version": "0"}, headers=FETCH)
    assert refused.status_code == 400 and refused.is_json
    fresh = client.get(f"/cases/{case.id}/opinion/token").json["csrf_token"]
    saved = client.post(f"/cases/{case.id}/opinion/autosave", data=DRAFT | {"version": "0"},
                        headers=FETCH | {"X-CSRFToken": fresh})
    assert saved.status_code == 200, saved.data
    assert token  # the page carries a token for its plain form too


@pytest.mark.parametrize("role, status", [("referring", 200), ("reviewer", 200), ("coordinator", 200),
                                          ("other_referring", 404), ("other_reviewer", 404)])
def test_letter_versions_and_fhir_per_role(make_case, login_as, role, status):
    case = make_case("letter_delivered")
    client = login_as(role)
    assert client.get(f"/cases/{case.id}/letters").status_code == status
    assert client.get(f"/cases/{case.id}/fhir/DiagnosticReport.json").status_code == status
    assert client.get(f"/cases/{case.id}/fhir/Task.json").status_code == status


def test_addendum_through_the_page_then_both_versions_download(db, storage, make_case, login_as):
    case = make_case("letter_delivered")
    reviewer, referrer = login_as("reviewer"), login_as("referring")
    assert 'id="addendum-form"' in reviewer.get(f"/cases/{case.id}/letters").get_data(as_text=True)
    assert 'id="addendum-form"' not in referrer.get(f"/cases/{case.id}/letters").get_data(as_text=True)
    # A signed opinion's edit page leads to the signed view rather than an editable form.
    assert reviewer.get(f"/cases/{case.id}/opinion").headers["Location"].endswith(f"/cases/{case.id}/letters")
    wrong = reviewer.post(f"/cases/{case.id}/opinion/addenda", data={"text": "x", "attest": "y", "password": "nope"})
    assert wrong.status_code == 400
    assert referrer.post(f"/cases/{case.id}/opinion/addenda",
                         data={"text": "x", "attest": "y", "password": PASSWORD}).status_code == 403
    ok = reviewer.post(f"/cases/{case.id}/opinion/addenda",
                       data={"reason": "Pathology review", "text": "Margins are clear on review.", "attest": "y",
                             "password": PASSWORD})
    assert ok.status_code == 302
    page = referrer.get(f"/cases/{case.id}/letters").get_data(as_text=True)
    urls = re.findall(rf"/cases/{case.id}/letters/\d+\.pdf", page)
    assert len(urls) == 2 and "Addendum 1" in page and "superseded" in page
    texts = [" ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(referrer.get(u).data)).pages).split())
             for u in urls]
    assert "Margins are clear on review." in texts[0] and "Margins are clear on review." not in texts[1]
    assert "Refined diagnosis." in texts[0] and "Refined diagnosis." in texts[1]
    downloads = db.scalars(select(AuditEvent.detail).where(AuditEvent.case_id == case.id,
                                                           AuditEvent.action == "letter.downloaded")).all()
    assert sorted(downloads) == ["version=1", "version=2"]

    report = referrer.get(f"/cases/{case.id}/fhir/DiagnosticReport.json")
    assert report.mimetype == "application/fhir+json"
    resource = report.json
    DiagnosticReport.model_validate(resource)
    assert resource["status"] == "appended" and "Margins are clear" in resource["conclusion"]
    latest = letters_for_case(db, case.id)[0]
    assert base64.b64decode(resource["presentedForm"][0]["data"]) == storage.read_bytes(latest.blob_key)
    task = referrer.get(f"/cases/{case.id}/fhir/Task.json").json
    Task.model_validate(task)
    assert task["status"] == "completed" and task["output"][0]["valueReference"]["reference"].endswith(case.reference)


def test_fhir_and_letters_need_a_signed_opinion(make_case, login_as):
    case = make_case("in_review")
    client = login_as("coordinator")
    assert client.get(f"/cases/{case.id}/fhir/DiagnosticReport.json").status_code == 404
    assert client.get(f"/cases/{case.id}/letters").status_code == 404


def test_public_verification_page(app, db, make_case):
    case = make_case("letter_delivered")
    letter = letters_for_case(db, case.id)[0]
    public = app.test_client()  # nobody logged in
    blank = public.get("/verify")
    assert blank.status_code == 200 and "Verification code" in blank.get_data(as_text=True)
    genuine = public.get(f"/verify?code={letter.verification_code.lower()}").get_data(as_text=True)
    assert 'data-genuine="yes"' in genuine and letter.sha256 in genuine and "23 Nov 2026" in genuine
    for secret in (case.patient_name, case.reference, case.patient_mrn, "Reviewer", "Referring"):
        assert secret not in genuine
    forged = public.get("/verify?code=" + "7" * 16).get_data(as_text=True)
    assert 'data-genuine="no"' in forged and letter.sha256 not in forged
    hostile = public.get("/verify?code=%3Cscript%3Ealert(1)%3C/script%3E").get_data(as_text=True)
    assert "<script>alert" not in hostile and 'data-genuine="no"' in hostile


def test_verification_is_rate_limited(app, db, make_case):
    app.config["VERIFY_RATE_LIMIT"] = 3
    public = app.test_client()
    for _ in range(3):
        assert public.get("/verify?code=AAAA-AAAA-AAAA-AAAA").status_code == 200
    limited = public.get("/verify?code=AAAA-AAAA-AAAA-AAAB")
    assert limited.status_code == 429 and "Too many checks" in limited.get_data(as_text=True)
    assert public.get("/verify").status_code == 200  # the empty form is never limited
