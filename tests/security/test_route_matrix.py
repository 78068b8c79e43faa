"""Every registered route × every role, built from app.url_map so no route can be forgotten.

Rules checked for EVERY route (including ones added later by other parts of the portal):
  * logged out: never a 2xx, except the public allowlist, but 302 to the login page for a browser GET and
    401 otherwise (API, DICOMweb, any POST);
  * an unrelated user of the same role gets 404 on any route about a case they may not see (403 only
    where the route refuses the whole role, before looking at the case: ROLE_GATED);
  * one rule for 403 and 404: a page closed to the user's role answers 403 (it reveals nothing); an object
    the user may not see answers 404 (its existence is not revealed);
  * non-admins never reach /admin/...
Known GET routes additionally have an expected status per role (EXPECTED); extend it when adding routes.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from review_portal.imaging.models import Series, Study
from review_portal.letters.models import Letter
from review_portal.security import API_BLUEPRINTS, PUBLIC_ENDPOINTS

ROLES = ["referring", "other_referring", "reviewer", "other_reviewer", "radiologist", "coordinator", "admin"]
OWNERS = {"referring", "reviewer", "coordinator", "admin"}  # may see case A
STRANGERS = {"other_referring", "other_reviewer", "radiologist"}  # same roles, not theirs

# Expected GET status on case A's objects, per role. Missing entries only get the generic rules.
EXPECTED = {
    "workflow.show_case": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    # Case A is signed: the draft preview is only for an opinion still being written.
    "workflow.preview_letter": {"referring": 403, "reviewer": 403, "coordinator": 403, "admin": 403},
    "cases.download_document": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "letters.download_letter": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "imaging.view_series": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "imaging.series_thumbnail": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "imaging.render_slice": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "privacy.export": {"referring": 403, "reviewer": 403, "coordinator": 200, "admin": 200},
    "audit.search_log": {r: (200 if r == "admin" else 403) for r in ROLES},
    "auth.users": {r: (200 if r == "admin" else 403) for r in ROLES},
    "workflow.list_cases": {r: 200 for r in ROLES},
    "auth.account": {r: 200 for r in ROLES},
    # Figures: staff see the service, reviewers their own work, referrers not at all.
    "analytics.show_figures": {r: (403 if "referring" in r else 200) for r in ROLES},
    "outcomes.list_outcomes": {r: (200 if "referring" in r else 403) for r in ROLES},
    # The outcome question exists only once it has been asked (90 days after the letter): not yet for case A.
    # Only referrers answer outcome questions: the other roles are refused before the case is looked up.
    "outcomes.answer_outcome": {r: (404 if "referring" in r else 403) for r in ROLES},
    "api_tokens.list_tokens": {r: 200 for r in ROLES},
    "api.openapi_document": {r: 200 for r in ROLES},
}
# The JSON API takes bearer tokens only: a logged-in browser session gets 401 on every /api/v1 route.
API_PUBLIC = {"api.openapi_document"}


def _is_api(endpoint: str) -> bool:
    return endpoint.startswith("api.") and endpoint not in API_PUBLIC


def _anonymous_status(endpoint: str, method: str) -> int:
    """Logged out: a browser GET is sent to the login page (302); programs (the API, DICOMweb) and any
    other method (a redirect would drop the form) get 401 (security.require_login)."""
    if _is_api(endpoint) or endpoint.split(".")[0] in API_BLUEPRINTS or method != "GET":
        return 401
    return 302


# Case routes refused by role before the case is looked up: 403 for everyone of that role, whatever the
# case id, so the answer says nothing about the case. Every other case route answers a stranger 404.
ROLE_GATED = {
    "audit.break_glass": STRANGERS,        # staff only
    "privacy.export": STRANGERS,           # staff only
    "reviews.reassign": STRANGERS,         # staff only
    "reviews.add_review": STRANGERS,       # staff only
    "reviews.release_letter": STRANGERS,   # staff only
    "reviews.extend_deadline": STRANGERS,  # staff only
    "outcomes.answer_outcome": {"other_reviewer", "radiologist"},  # referrers only
    "identity.removed_study_views": STRANGERS,  # administrators only
}


# With a token of each role, GET on case A's objects through /api/v1 (case A has its letter delivered).
API_EXPECTED = {
    "api.show_referral": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "api.download_letter": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "api.fhir_task": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "api.fhir_diagnostic_report": {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200},
    "api.list_referrals": {r: 200 for r in ROLES},
    "api.whoami": {r: 200 for r in ROLES},
}
CASE_TEAM = {"referring": 200, "reviewer": 200, "coordinator": 200, "admin": 200}
STAFF_ONLY = {r: (200 if r in ("coordinator", "admin") else 403) for r in ROLES}  # a page for the role: 403
EXPECTED.update({
    # Imaging (issue 3): everyone on the case reads the images; scans are added only while the case is open
    # (case A's letter is out), by nobody once it is.
    **{e: CASE_TEAM for e in ("imaging.view_case_images", "imaging.series_info", "imaging.slice_header",
                              "imaging.key_image_png", "imaging.show_ingest", "imaging.frame_pixels")},
    # The viewer's measurements (issue 15): everyone who may see the case reads them.
    "measurements.list_measurements": CASE_TEAM,
    "imaging.add_scans": {"referring": 403, "reviewer": 403, "coordinator": 403, "admin": 403},
    **{e: CASE_TEAM for e in ("dicomweb.search_studies", "dicomweb.search_series", "dicomweb.search_instances",
                              "dicomweb.retrieve_study", "dicomweb.retrieve_series", "dicomweb.retrieve_instance",
                              "dicomweb.study_metadata", "dicomweb.series_metadata", "dicomweb.instance_metadata",
                              "dicomweb.render_instance")},
    # Opinions and letters (issue 5): the signed opinion is read through its letters; nobody edits it any more.
    "opinions.edit_opinion": {"referring": 302, "reviewer": 302, "coordinator": 302, "admin": 302},
    "opinions.opinion_token": {"referring": 403, "reviewer": 403, "coordinator": 403, "admin": 403},
    # Sections (issue 17): case A's letter is out, so a section page sends everyone back to the case page.
    "sections.edit_section": {"referring": 302, "reviewer": 302, "coordinator": 302, "admin": 302},
    "sections.section_token": {"referring": 403, "reviewer": 403, "coordinator": 403, "admin": 403},
    **{e: CASE_TEAM for e in ("letters.letter_versions", "letters.fhir_diagnostic_report", "letters.fhir_task")},
    # Workflow (issue 4): the queue is the coordinators'; availability is the reviewers'; a notification
    # opens (redirects to its case) only for the person it was sent to.
    "reviews.dashboard": STAFF_ONLY,
    # Case A's letter is out: nothing to reassign, so staff get 409 with a way back to the case.
    "reviews.reassign": {r: (409 if r in ("coordinator", "admin") else 403) for r in ROLES},
    "assignment.availability": {r: (200 if r in ("reviewer", "other_reviewer", "radiologist") else 403) for r in ROLES},
    "notifications.list_notifications": {r: 200 for r in ROLES},
    "notifications.open_notification": {r: (302 if r == "reviewer" else 404) for r in ROLES},
    # Reviewer profiles are the administrators'; `user_id` here is a referring physician, so not a reviewer's profile.
    "assignment.reviewer_profiles": {r: (200 if r == "admin" else 403) for r in ROLES},
    "assignment.edit_reviewer_profile": {r: (404 if r == "admin" else 403) for r in ROLES},
    # The disciplines a referral can ask for are the administrators' to edit.
    "cases.list_disciplines": {r: (200 if r == "admin" else 403) for r in ROLES},
    # Who saw a wrong patient's removed study: the administrators' page (case A has none removed: 404).
    "identity.removed_study_views": {r: (404 if r == "admin" else 403) for r in ROLES},
    # The summary for the patient (issue 17): only the lead who signed writes it; case A has none signed yet, so
    # there is nothing to download (tests/web/test_patient_summary_routes.py covers a signed one per role).
    **{e: {"referring": 403, "reviewer": 200, "coordinator": 403, "admin": 403}
       for e in ("summaries.edit_summary", "summaries.token")},
    "summaries.download_summary": {"referring": 404, "reviewer": 404, "coordinator": 404, "admin": 404},
})


@pytest.fixture
def world(app, db, users, make_case, login_as, tmp_path):
    from weasyprint import HTML

    from review_portal.uploads import UploadedFile
    from tests.conftest import NOW

    pdf = tmp_path / "r.pdf"
    HTML(string="<p>report</p>").write_pdf(pdf)
    # Case A: referring → reviewer, with a document, scans and a letter.
    case_a = make_case("letter_delivered", scans=["CT_small.dcm"])
    from review_portal.cases.services import add_document

    add_document(db, app.extensions["storage"], case_a, UploadedFile("r.pdf", pdf), by=users["referring"], now=NOW)
    db.commit()
    case_b = make_case("assigned", by=users["other_referring"], cancer_site="gi")
    from review_portal.auth.services import create_user

    bystander = create_user(db, email="bystander@test.example", name="By Stander", password="a-quiet-onlooker-2026",
                            role="referring", now=NOW)
    db.commit()
    series = db.scalar(select(Series).join(Study).where(Study.case_id == case_a.id))
    letter = db.scalar(select(Letter).where(Letter.case_id == case_a.id))
    instance = series.instances[0]
    # Case A's own objects from the other parts of the portal: a key image, its upload, its review and
    # assignment, a follow-up question, the reviewer's notification about it and out-of-office period.
    from review_portal.assignment.models import OutOfOffice
    from review_portal.imaging.models import IngestJob, KeyImage
    from review_portal.messaging.services import ask_follow_up
    from review_portal.notifications.models import Notification

    png_key, _ = app.extensions["storage"].put_bytes(app.extensions["storage"].read_bytes(series.thumbnail_key))
    key_image = KeyImage(case_id=case_a.id, series_id=series.id, slice_index=0, caption="", png_key=png_key,
                         created_at=NOW, created_by_id=users["reviewer"].id)
    away = OutOfOffice(user_id=users["reviewer"].id, starts_on=NOW.date() + timedelta(days=30),
                       ends_on=NOW.date() + timedelta(days=31), note="")
    db.add_all([key_image, away])
    follow_up = ask_follow_up(db, case_a, question="Radiotherapy?", max_questions=3, by=users["referring"], ip="1",
                              now=NOW + timedelta(hours=3))
    db.commit()
    note = db.scalar(select(Notification).where(Notification.user_id == users["reviewer"].id,
                                                Notification.case_id == case_a.id).order_by(Notification.id))
    ids = {"case_id": case_a.id, "series_id": series.id, "letter_id": letter.id,
           "document_id": case_a.documents[0].id, "index": 0, "user_id": bystander.id, "grant_id": 1,
           "token": "not-a-token", "fmt": "png", "key_image_id": key_image.id,
           "ingest_id": db.scalar(select(IngestJob.id).where(IngestJob.case_id == case_a.id)),
           "assignment_id": case_a.active_assignment.id, "review_id": case_a.lead_review.id,
           "follow_up_id": follow_up.id, "notification_id": note.id, "period_id": away.id,
           "study_uid": series.study.study_instance_uid, "series_uid": series.series_instance_uid,
           "sop_uid": instance.sop_instance_uid, "frame": 1, "instance_id": instance.id}
    clients = {role: login_as(role) for role in ROLES}
    return {"a": case_a, "b": case_b, "ids": ids, "clients": clients, "login_as": login_as}


def _url(rule, ids):
    from flask import url_for

    values = {}
    for arg in rule.arguments:
        if arg == "filename":
            values[arg] = "css/portal.css"
        elif arg == "fmt":
            values[arg] = "png"
        elif arg == "frame" and rule.endpoint == "imaging.frame_pixels":
            values[arg] = 0  # the viewer counts frames from 0, DICOMweb from 1
        else:
            values[arg] = ids.get(arg, 1)
    return url_for(rule.endpoint, **values)


def _rules(app):
    return [r for r in app.url_map.iter_rules()]


def test_every_route_denies_by_default_and_by_object(app, world):
    # Every page about a case states who gets what: a new one cannot rely on the generic rules alone.
    # (The token-only API has its own table, API_EXPECTED, checked per role with tokens below.)
    case_gets = {r.endpoint for r in _rules(app)
                 if "case_id" in r.arguments and "GET" in (r.methods or ()) and not _is_api(r.endpoint)}
    assert case_gets - set(EXPECTED) == set()
    checked = 0
    for rule in _rules(app):
        with app.test_request_context():
            url = _url(rule, world["ids"])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            # buffered: read each answer whole, as a real client does. A streamed answer left unread (DICOMweb
            # retrieve) would keep its request context pushed in this one test thread and leak its user into the next.
            anon = app.test_client().open(url, method=method, buffered=True)
            if rule.endpoint not in PUBLIC_ENDPOINTS:
                expected_anon = _anonymous_status(rule.endpoint, method)
                assert anon.status_code == expected_anon, (rule.endpoint, method, anon.status_code)
                if expected_anon == 302:
                    assert "/login" in anon.headers["Location"]
                if _is_api(rule.endpoint):
                    assert anon.is_json, (rule.endpoint, method)
            for role in ROLES:
                # A state-changing call (logout, log out everywhere...) gets a fresh session so later checks still run.
                client = world["clients"][role] if method == "GET" else world["login_as"](role)
                r = client.open(url, method=method, buffered=True)
                if method == "GET" and r.status_code == 302 and "/login" in r.headers["Location"]:
                    # An earlier "log out everywhere" ended this role's cached session: log in again and retry.
                    world["clients"][role] = client = world["login_as"](role)
                    r = client.open(url, method=method, buffered=True)
                assert r.status_code != 500, (rule.endpoint, role, method)
                if _is_api(rule.endpoint):
                    # The session cookie is no credential for the API, with or without CSRF protection.
                    assert r.status_code == 401 and r.is_json, (rule.endpoint, role, method, r.status_code)
                    checked += 1
                    continue
                if "case_id" in rule.arguments and role in STRANGERS:
                    expected_stranger = 403 if role in ROLE_GATED.get(rule.endpoint, ()) else 404
                    assert r.status_code == expected_stranger, (rule.endpoint, role, method, r.status_code)
                if rule.rule.startswith("/admin") and role != "admin":
                    assert r.status_code == 403, (rule.endpoint, role, method, r.status_code)
                expected = EXPECTED.get(rule.endpoint, {}).get(role)
                if method == "GET" and expected is not None:
                    assert r.status_code == expected, (rule.endpoint, role, r.status_code)
                checked += 1
    assert checked > 100


def test_sequential_id_guessing_finds_nothing(app, world):
    a, b = world["a"], world["b"]
    guesser = world["clients"]["other_referring"]
    visible = [n for n in range(1, max(a.id, b.id) + 20) if guesser.get(f"/cases/{n}").status_code == 200]
    assert visible == [b.id]
    reviewer = world["clients"]["other_reviewer"]
    for path in (f"/cases/{a.id}/documents/{world['ids']['document_id']}", f"/cases/{a.id}/letters/{world['ids']['letter_id']}.pdf",
                 f"/cases/{a.id}/series/{world['ids']['series_id']}/slices/0.png", f"/cases/{b.id}/series/{world['ids']['series_id']}"):
        assert reviewer.get(path).status_code == 404, path
    # The owner of case B cannot reach case A's series by putting A's series id under B.
    owner_b = world["clients"]["other_referring"]
    assert owner_b.get(f"/cases/{b.id}/series/{world['ids']['series_id']}").status_code == 404
    assert owner_b.get(f"/cases/{b.id}/letters/{world['ids']['letter_id']}.pdf").status_code == 404


def test_api_routes_by_token_per_role(app, db, world):
    """Every /api/v1 route × every role, with that role's own write token: never a 500, strangers never reach
    case A (404), and the known GETs answer as expected."""
    from review_portal.api.services import create_token
    from review_portal.auth.models import User
    from review_portal.clock import utcnow

    tokens = {}
    for role in ROLES:
        user = db.scalar(select(User).where(User.email == f"{role}@test.example"))
        tokens[role] = create_token(db, name="matrix", scope="write", days=7, by=user, ip="", now=utcnow())[1]
    db.commit()
    checked = 0
    for rule in _rules(app):
        if not _is_api(rule.endpoint):
            continue
        with app.test_request_context():
            url = _url(rule, world["ids"])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for role in ROLES:
                r = app.test_client().open(url, method=method, headers={"Authorization": f"Bearer {tokens[role]}"})
                assert r.status_code != 500, (rule.endpoint, role, method)
                if r.status_code >= 400:
                    assert r.is_json, (rule.endpoint, role, method, r.mimetype)  # JSON or OperationOutcome
                if "case_id" in rule.arguments and role in STRANGERS:
                    assert r.status_code == 404, (rule.endpoint, role, method, r.status_code)
                expected = API_EXPECTED.get(rule.endpoint, {}).get(role)
                if method == "GET" and expected is not None:
                    assert r.status_code == expected, (rule.endpoint, role, r.status_code)
                checked += 1
    assert checked >= 60
