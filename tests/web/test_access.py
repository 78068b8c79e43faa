"""Who may open what: object-level access per role, and deny-by-default for logged-out visitors."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from flask import url_for
from sqlalchemy import select

from review_portal.auth.models import Role
from review_portal.auth.services import create_user
from review_portal.workflow.assignments import reassign_case
from review_portal.uploads import UploadedFile
from review_portal.cases.services import add_document
from review_portal.imaging.services import series_of_case
from review_portal.letters.services import letters_for_case
from review_portal.security import API_BLUEPRINTS, PUBLIC_ENDPOINTS
from tests.conftest import NOW, PASSWORD, TOTP_SECRET, login_client

# Kept here by hand on purpose: making a page public must show up as a change to this test as well.
PUBLIC = {"auth.login", "static", "health.healthz", "health.readyz", "letters.verify_letter",
          # The steps before a session exists: second factor and first enrolment (both need the password step's
          # pending state), password reset by single-use token, and accepting an invitation.
          "auth.login_mfa", "auth.login_enrol", "auth.forgot_password", "auth.reset_password",
          "auth.accept_invitation", "api.openapi_document"}


@pytest.fixture
def world(db, storage, users, make_case, tmp_path):
    """A delivered case with scans, a report and a letter; an open case in review; a case offered to the
    reviewer and not yet accepted; and cases of other reviewers."""
    delivered = make_case("letter_delivered", scans=["CT_small.dcm"])
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%minimal test report\n")
    doc = add_document(db, storage, delivered, UploadedFile("report.pdf", pdf), by=users["referring"], now=NOW)
    db.commit()
    open_case = make_case("in_review", scans=["MR_small.dcm"])
    offered = make_case("assigned")
    # The radiologist and the GI oncologist review other cases, never these three.
    make_case("assigned", review_type="radiology_read")
    make_case("assigned", cancer_site="gi")
    [series] = series_of_case(db, delivered.id)
    [letter] = letters_for_case(db, delivered.id)
    [open_series] = series_of_case(db, open_case.id)
    assert series.thumbnail_key and open_series.thumbnail_key
    c, s = delivered.id, series.id
    oc, os_ = open_case.id, open_series.id
    of = offered.id
    return {
        "delivered": {
            "case": f"/cases/{c}",
            "series": f"/cases/{c}/series/{s}",
            "thumbnail": f"/cases/{c}/series/{s}/thumbnail.png",
            "slice": f"/cases/{c}/series/{s}/slices/0.png",
            "slice_windowed": f"/cases/{c}/series/{s}/slices/0.png?wc=40&ww=400",
            "document": f"/cases/{c}/documents/{doc.id}",
            "letter": f"/cases/{c}/letters/{letter.id}.pdf",
            "opinion": f"/cases/{c}/opinion",
            "reassign": f"/cases/{c}/reassign",
        },
        "open": {
            "case": f"/cases/{oc}",
            "series": f"/cases/{oc}/series/{os_}",
            "thumbnail": f"/cases/{oc}/series/{os_}/thumbnail.png",
            "slice": f"/cases/{oc}/series/{os_}/slices/0.png",
            "opinion": f"/cases/{oc}/opinion",
            "reassign": f"/cases/{oc}/reassign",
        },
        "offered": {
            "case": f"/cases/{of}",
            "opinion": f"/cases/{of}/opinion",
            "reassign": f"/cases/{of}/reassign",
        },
        "ids": {"delivered": c, "open": oc, "offered": of, "series": s, "document": doc.id, "letter": letter.id},
    }


VIEW = ["case", "series", "thumbnail", "slice", "slice_windowed", "document", "letter"]
OUTSIDERS = ["other_referring", "other_reviewer", "radiologist"]


def expected_delivered(role: str) -> dict[str, int]:
    if role in OUTSIDERS:
        return {page: 404 for page in VIEW + ["opinion"]} | {"reassign": 403}  # reassigning is for staff only
    table = {page: 200 for page in VIEW}
    # A signed opinion is closed for editing: the page sends everyone who may see the case to the signed
    # opinion and its letter versions instead.
    table["opinion"] = 302
    table["reassign"] = 409 if role in ("coordinator", "admin") else 403  # nothing left to reassign
    return table


def expected_open(role: str) -> dict[str, int]:
    if role in OUTSIDERS:
        return {page: 404 for page in ["case", "series", "thumbnail", "slice", "opinion"]} | {"reassign": 403}
    table = {"case": 200, "series": 200, "thumbnail": 200, "slice": 200}
    table["opinion"] = 200 if role == "reviewer" else 403
    table["reassign"] = 200 if role in ("coordinator", "admin") else 403
    return table


def expected_offered(role: str) -> dict[str, int]:
    if role in OUTSIDERS:
        return {"case": 404, "opinion": 404, "reassign": 403}
    # The offered reviewer sees the case to decide (conflicts, expertise) but drafts only after accepting.
    return {"case": 200, "opinion": 403, "reassign": 200 if role in ("coordinator", "admin") else 403}


ROLES = ["referring", "reviewer", "coordinator", "admin"] + OUTSIDERS


@pytest.mark.parametrize("role", ROLES)
def test_role_by_route_access_table(world, login_as, role):
    client = login_as(role)
    for which, expected in (("delivered", expected_delivered(role)), ("open", expected_open(role)),
                            ("offered", expected_offered(role))):
        actual = {page: client.get(world[which][page]).status_code for page in expected}
        assert actual == expected, f"{role} on the {which} case"

    urls = world["delivered"]
    responses = {page: client.get(urls[page]) for page in ("thumbnail", "slice", "document", "letter")}
    if role in OUTSIDERS:
        # Nothing of the patient's leaks in the 404 body either.
        for r in responses.values():
            assert b"Test Patient" not in r.data and not r.data.startswith((b"%PDF", b"\x89PNG"))
        return
    for page, (mimetype, magic) in {"thumbnail": ("image/png", b"\x89PNG"), "slice": ("image/png", b"\x89PNG"),
                                    "document": ("application/pdf", b"%PDF-"),
                                    "letter": ("application/pdf", b"%PDF-")}.items():
        r = responses[page]
        assert r.mimetype == mimetype and r.data.startswith(magic), page
        # Patient data is never cacheable by shared caches.
        assert "public" not in r.headers.get("Cache-Control", ""), page
        assert r.headers.get("Cache-Control"), page


def test_ids_of_other_cases_cannot_be_mixed(world, login_as):
    """A series, document or letter of case A is not reachable through the URL of case B."""
    client = login_as("coordinator")
    ids, open_id = world["ids"], world["ids"]["open"]
    for url in (f"/cases/{open_id}/series/{ids['series']}", f"/cases/{open_id}/series/{ids['series']}/thumbnail.png",
                f"/cases/{open_id}/documents/{ids['document']}", f"/cases/{open_id}/letters/{ids['letter']}.pdf"):
        assert client.get(url).status_code == 404, url


def test_nonexistent_case_is_404_even_for_staff(login_as):
    assert login_as("admin").get("/cases/999999").status_code == 404


def test_a_reviewer_loses_access_when_the_case_is_reassigned(world, db, users, login_as):
    second = create_user(db, email="second@test.example", name="Second", password=PASSWORD, role=Role.REVIEWER,
                         now=NOW, institution=users["reviewer"].institution, specialty="medical_oncology",
                         sites=["breast"])
    second.totp_secret, second.totp_enabled_at = TOTP_SECRET, NOW  # reviewers log in with a second factor
    from review_portal.cases.models import Case

    case = db.get(Case, world["ids"]["open"])
    assert case.status == "in_review"  # accepted and being worked on by the first reviewer
    reassign_case(db, case, second, by=users["coordinator"], ip="127.0.0.1", now=NOW + timedelta(hours=1))
    db.commit()
    old = login_as("reviewer")
    assert old.get(world["open"]["case"]).status_code == 404
    assert old.get(world["open"]["slice"]).status_code == 404
    assert old.get(world["open"]["opinion"]).status_code == 404
    new = login_as_user(old.application, second)
    assert new.get(world["open"]["case"]).status_code == 200
    # Handed over as an offer: the new reviewer drafts only after accepting it.
    assert new.get(world["open"]["opinion"]).status_code == 403


def login_as_user(app, user):
    """Log in a user made inside the test (enrolled with the shared TOTP secret): password, then the code."""
    client = app.test_client()
    r = login_client(app, client, user.email)
    assert r.status_code == 302 and "/login" not in r.headers["Location"], r.data
    return client


def test_case_list_shows_only_what_the_user_may_see(world, db, login_as):
    from review_portal.cases.models import Case

    refs = {c.id: c.reference for c in db.scalars(select(Case))}
    mine = {world["ids"]["delivered"], world["ids"]["open"], world["ids"]["offered"]}
    for role, visible in (("referring", set(refs)), ("reviewer", mine), ("other_referring", set()),
                          ("coordinator", set(refs))):
        html = login_as(role).get("/cases").get_data(as_text=True)
        shown = {cid for cid, ref in refs.items() if ref in html}
        assert shown == visible, role


# --------------------------------------------------------------------------- logged out


def protected_requests(world):
    d, ids = world["delivered"], world["ids"]
    gets = [d[p] for p in VIEW + ["opinion", "reassign"]] + ["/", "/cases", "/cases?status=assigned", "/referrals/new"]
    posts = [f"/cases/{ids['delivered']}/withdraw", f"/cases/{ids['delivered']}/acknowledge", d["opinion"],
             f"{d['opinion']}/sign", d["reassign"], "/referrals/new", "/logout"]
    return gets, posts


def test_logged_out_get_redirects_to_login_and_post_is_401(world, db, client):
    gets, posts = protected_requests(world)
    for url in gets:
        r = client.get(url)
        assert r.status_code == 302, url
        location = urlsplit(r.headers["Location"])
        assert location.path == "/login", url
        assert "next=" in location.query, url
    for url in posts:
        r = client.post(url, data={"reason": "x", "password": PASSWORD, "attest": "y", "confirm": "yes"})
        assert r.status_code == 401, url
        assert b"Test Patient" not in r.data
    from review_portal.cases.models import Case

    client.post(f"/cases/{world['ids']['open']}/withdraw", data={"reason": "x", "confirm": "yes"})
    db.expire_all()
    assert db.get(Case, world["ids"]["open"]).status == "in_review"
    assert db.get(Case, world["ids"]["delivered"]).status == "letter_delivered"


def test_public_endpoints(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}
    r = client.get("/login")
    assert r.status_code == 200 and b'name="password"' in r.data


def sample_value(rule, arg):
    """1 for ids; the first allowed word for an any(...) part such as a slice's image format."""
    allowed = getattr(rule._converters.get(arg), "items", None)
    return sorted(allowed)[0] if allowed else 1


def test_every_route_is_protected_unless_allowlisted(app):
    """A route added later without thinking about login still refuses anonymous visitors."""
    client = app.test_client()
    checked = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        with app.test_request_context():
            url = url_for(rule.endpoint, **{arg: sample_value(rule, arg) for arg in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = client.open(url, method=method)
            if rule.endpoint.startswith("api."):  # token-only JSON API: no login page to send a client to
                assert r.status_code == 401 and r.is_json, (rule.endpoint, method, r.status_code)
            elif method == "GET" and rule.endpoint.split(".")[0] not in API_BLUEPRINTS:
                assert r.status_code == 302, (rule.endpoint, method, r.status_code)
                assert urlsplit(r.headers["Location"]).path == "/login", rule.endpoint
            else:
                # Programs (DICOMweb clients) and every non-GET get a plain 401, never the page.
                assert r.status_code == 401, (rule.endpoint, method, r.status_code)
            checked.append((rule.endpoint, method))
    endpoints = {e for e, _ in checked}
    # Sanity: the walk really covered the application's routes.
    assert {"workflow.show_case", "workflow.new_referral", "opinions.edit_opinion", "workflow.sign_opinion", "letters.download_letter",
            "imaging.render_slice", "reviews.reassign", "auth.logout", "dicomweb.search_studies"} <= endpoints
    assert len(checked) >= 15
    # The hand-kept list and the application's allowlist agree: no endpoint is public by accident.
    assert PUBLIC == PUBLIC_ENDPOINTS | set(app.config["PUBLIC_ENDPOINTS_EXTRA"])
