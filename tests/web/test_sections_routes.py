"""The multidisciplinary opinion's pages: a contributor's section (autosave with versions, sign with the
password), a coordinator's waiver and chair, the chair's positions, the tumor-board agenda."""
import pytest

from review_portal.cases.models import Case
from review_portal.opinions.sections import section_of_review
from tests.board_helpers import (
    RADIATION,
    RADIOLOGY,
    make_radiation_oncologist,
    three_discipline_case,
)
from tests.conftest import PASSWORD, login_client

FETCH = {"X-Requested-With": "fetch", "Accept": "application/json"}


@pytest.fixture
def board(db, make_case, users):
    make_radiation_oncologist(db, users)
    return three_discipline_case(db, make_case, users)


def _client(app, email):
    c = app.test_client()
    r = login_client(app, c, email)
    assert r.status_code == 302, r.data
    return c


def _write_and_sign(app, case, review, content):
    c = _client(app, review.reviewer.email)
    r = c.post(f"/cases/{case.id}/sections/{review.id}/autosave", data={"version": "0", **content}, headers=FETCH)
    assert r.status_code == 200, r.data
    version = r.json["version"]
    r = c.post(f"/cases/{case.id}/sections/{review.id}/sign",
               data={"version": str(version), "attest": "y", "password": PASSWORD})
    assert r.status_code == 302, r.data
    return c


def test_the_author_autosaves_and_a_stale_tab_gets_409(app, db, board):
    case, reviews = board
    rad = reviews["radiology"]
    c = _client(app, rad.reviewer.email)
    page = c.get(f"/cases/{case.id}/sections/{rad.id}")
    assert page.status_code == 200 and b"RADPEER" in page.data and b"Plan in this domain" not in page.data
    r = c.post(f"/cases/{case.id}/sections/{rad.id}/autosave", data={"version": "0", "findings": "Mass."}, headers=FETCH)
    assert r.status_code == 200 and r.json["version"] == 1
    r = c.post(f"/cases/{case.id}/sections/{rad.id}/autosave", data={"version": "1", "findings": "Mass, 22 mm."}, headers=FETCH)
    assert r.status_code == 200 and r.json["version"] == 2
    stale = c.post(f"/cases/{case.id}/sections/{rad.id}/autosave", data={"version": "1", "findings": "old tab"}, headers=FETCH)
    assert stale.status_code == 409 and "changed elsewhere" in stale.json["error"]
    bad = c.post(f"/cases/{case.id}/sections/{rad.id}/autosave", data={"version": "2", "radpeer_score": "7"}, headers=FETCH)
    assert bad.status_code == 400
    db.rollback()
    assert section_of_review(db, rad.id).content["findings"] == "Mass, 22 mm."


def test_only_the_author_opens_a_section(app, board, users, login_as):
    case, reviews = board
    rad = reviews["radiology"]
    for key in ("reviewer", "coordinator", "referring", "other_reviewer"):
        assert login_as(key).get(f"/cases/{case.id}/sections/{rad.id}").status_code == 404, key


def test_signing_asks_the_password_and_a_signed_section_is_frozen(app, db, board):
    case, reviews = board
    rad = reviews["radiology"]
    c = _client(app, rad.reviewer.email)
    c.post(f"/cases/{case.id}/sections/{rad.id}/autosave", data={"version": "0", **RADIOLOGY}, headers=FETCH)
    wrong = c.post(f"/cases/{case.id}/sections/{rad.id}/sign", data={"version": "1", "attest": "y", "password": "nope"})
    assert wrong.status_code == 400 and b"password is not correct" in wrong.data
    ok = c.post(f"/cases/{case.id}/sections/{rad.id}/sign", data={"version": "1", "attest": "y", "password": PASSWORD})
    assert ok.status_code == 302
    again = c.post(f"/cases/{case.id}/sections/{rad.id}/autosave", data={"version": "2", "findings": "edit"}, headers=FETCH)
    assert again.status_code == 409 and "section addendum" in again.json["error"]
    db.rollback()
    assert section_of_review(db, rad.id).status == "signed"


def test_the_consensus_sign_is_409_naming_missing_sections_then_waiver_and_positions(app, db, board, login_as):
    case, reviews = board
    _write_and_sign(app, case, reviews["radiology"], RADIOLOGY)
    lead = _client(app, reviews["medical_oncology"].reviewer.email)
    lead.post(f"/cases/{case.id}/opinion/autosave", data={
        "version": "0", "diagnosis_concordance": "confirmed", "reviewer_diagnosis": "IDC", "rationale": "Board.",
        "plan_concordance": "modify", "recommended_plan": "Surgery then RT."}, headers=FETCH)
    r = lead.post(f"/cases/{case.id}/opinion/sign", data={"attest": "y", "password": PASSWORD})
    assert r.status_code == 409
    assert "Radiation oncology (Rad Onc, not started)" in r.get_data(as_text=True)
    coordinator = login_as("coordinator")
    page = coordinator.get(f"/cases/{case.id}")
    assert b"Waive section" in page.data and b"Multidisciplinary opinion" in page.data
    assert coordinator.post(f"/cases/{case.id}/sections/{reviews['radiation_oncology'].id}/waive",
                            data={"reason": ""}).status_code == 400
    assert coordinator.post(f"/cases/{case.id}/sections/{reviews['radiation_oncology'].id}/waive",
                            data={"reason": "On leave; discussed by phone."}).status_code == 302
    section = section_of_review(db, reviews["radiology"].id)
    r = lead.post(f"/cases/{case.id}/sections/{section.id}/position", data={"position": "dissent"})
    assert r.status_code == 400 and "own words" in r.get_data(as_text=True)
    r = lead.post(f"/cases/{case.id}/sections/{section.id}/position",
                  data={"position": "dissent", "dissent_text": "I would biopsy the node first."})
    assert r.status_code == 302
    r = lead.post(f"/cases/{case.id}/opinion/sign", data={"attest": "y", "password": PASSWORD})
    assert r.status_code == 302, r.get_data(as_text=True)
    db.expire_all()
    assert db.get(Case, case.id).status == "letter_delivered"


def test_the_coordinator_names_a_chair_from_the_accepted_reviewers(app, db, board, login_as):
    case, reviews = board
    coordinator = login_as("coordinator")
    chair = reviews["radiation_oncology"].reviewer
    assert coordinator.post(f"/cases/{case.id}/chair", data={"chair_id": "999"}).status_code == 400
    assert coordinator.post(f"/cases/{case.id}/chair", data={"chair_id": str(chair.id), "reason": "Chairs the board"}
                            ).status_code == 302
    assert _client(app, chair.email).get(f"/cases/{case.id}/opinion").status_code == 200
    assert _client(app, reviews["medical_oncology"].reviewer.email).get(f"/cases/{case.id}/opinion").status_code == 403


def test_the_board_agenda_lists_what_each_may_see_with_an_empty_state(app, db, board, users, login_as):
    case, reviews = board
    _write_and_sign(app, case, reviews["radiation_oncology"], RADIATION)
    page = login_as("coordinator").get("/board")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and case.reference in text
    assert "Radiation oncology: signed" in text and "Radiology (Radiologist)" in text
    assert "Reviewer (lead reviewer)" in text
    assert case.reference in login_as("radiologist").get("/board").get_data(as_text=True)
    empty = login_as("other_reviewer").get("/board")
    assert empty.status_code == 200 and b"board-empty" in empty.data and case.reference.encode() not in empty.data
    assert login_as("referring").get("/board").status_code == 403


def test_the_board_agenda_pages(app, db, make_case, users, login_as):
    first = make_case("in_review", disciplines=("medical_oncology", "radiology"), cancer_site="breast")
    second = make_case("in_review", disciplines=("medical_oncology", "radiology"), cancer_site="breast")
    app.config["PAGE_SIZE"] = 1
    coordinator = login_as("coordinator")
    page1 = coordinator.get("/board").get_data(as_text=True)
    page2 = coordinator.get("/board?page=2").get_data(as_text=True)
    assert "Page 1 of 2" in page1 and "Page 2 of 2" in page2
    assert {first.reference in page1, second.reference in page1} == {True, False}
    assert (first.reference in page2) != (first.reference in page1)
