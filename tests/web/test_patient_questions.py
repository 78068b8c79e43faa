"""The patient's own questions: typed on the referral form, checked, shown to the reviewer beside the question."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from review_portal.cases.models import Case
from review_portal.cases.questions import PatientQuestion, clean_patient_questions, patient_questions_for
from review_portal.errors import InvalidInput
from review_portal.workflow.assignments import accept_offer
from tests.conftest import NOW
from tests.web.test_referrals import form

QUESTIONS = {"patient_questions-0": "Will I need chemo?", "patient_questions-1": "  ",
             "patient_questions-2": "Can I keep   working during treatment?"}


def test_clean_keeps_order_drops_blanks_and_folds_whitespace():
    assert clean_patient_questions(["  Is it\ncurable? ", "", "Why me?"]) == ["Is it curable?", "Why me?"]
    assert clean_patient_questions(()) == []


@pytest.mark.parametrize("questions, message", [
    (["q?"] * 6, "At most 5"),
    (["x" * 501], "under 500"),
    (["Is it \x07 bad?"], "control character"),
    ([42], "must be text"),
])
def test_clean_refuses_bad_questions(questions, message):
    with pytest.raises(InvalidInput, match=message):
        clean_patient_questions(questions)


def test_referral_form_stores_the_questions_and_reviewer_sees_them(db, users, login_as):
    client = login_as("referring")
    assert "The patient's questions (optional)" in client.get("/referrals/new").get_data(as_text=True)
    r = client.post("/referrals/new", data={**form(), **QUESTIONS})
    assert r.status_code == 302, r.data
    db.expire_all()
    case = db.scalar(select(Case))
    assert patient_questions_for(db, case.id) == ["Will I need chemo?", "Can I keep working during treatment?"]
    assert [q.position for q in db.scalars(select(PatientQuestion).order_by(PatientQuestion.position))] == [1, 2]
    # Beside the clinical question on the case page and on the opinion page.
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'id="patient-questions"' in page and "Will I need chemo?" in page
    accept_offer(db, case.active_assignment, by=users["reviewer"], ip="127.0.0.1", now=NOW)
    db.commit()
    reviewer = login_as("reviewer")
    opinion_page = reviewer.get(f"/cases/{case.id}/opinion").get_data(as_text=True)
    assert "Can I keep working during treatment?" in opinion_page
    assert opinion_page.index("The question") < opinion_page.index("Will I need chemo?")


def test_without_questions_nothing_is_shown(db, users, login_as):
    client = login_as("referring")
    assert client.post("/referrals/new", data=form()).status_code == 302
    case = db.scalar(select(Case))
    assert patient_questions_for(db, case.id) == []
    assert 'id="patient-questions"' not in client.get(f"/cases/{case.id}").get_data(as_text=True)


def test_an_over_long_question_is_refused_and_nothing_is_written(db, users, login_as):
    client = login_as("referring")
    r = client.post("/referrals/new", data={**form(), "patient_questions-0": "y" * 501},
                    headers={"X-Requested-With": "fetch"})
    assert r.status_code == 400
    assert "patient_questions" in str(r.get_json()["fields"])
    assert db.scalar(select(Case.id)) is None and db.scalar(select(PatientQuestion.id)) is None
