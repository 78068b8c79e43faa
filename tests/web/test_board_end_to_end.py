"""End to end through the routes: a three-discipline case (radiology, medical oncology, radiation oncology),
each section written and signed by its author, one dissent, the consensus signed last, ONE letter read back
with pypdf holding every section, signer and dissent, then an addendum to one section re-issuing the letter."""
import io

from pypdf import PdfReader

from review_portal.cases.models import Case
from review_portal.letters.services import letters_for_case
from review_portal.opinions.sections import section_of_review
from tests.board_helpers import (
    MEDICAL,
    RADIATION,
    RADIOLOGY,
    make_radiation_oncologist,
    three_discipline_case,
)
from tests.conftest import PASSWORD, login_client

FETCH = {"X-Requested-With": "fetch", "Accept": "application/json"}
DISSENT = "Irradiate the regional nodes whatever the biopsy shows."


def _client(app, email):
    c = app.test_client()
    assert login_client(app, c, email).status_code == 302
    return c


def _pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())


def test_three_disciplines_one_dissent_one_letter_then_a_section_addendum(app, db, make_case, users):
    make_radiation_oncologist(db, users)
    case, reviews = three_discipline_case(db, make_case, users)
    case_id = case.id
    clients = {}
    for discipline, content in (("radiology", RADIOLOGY), ("radiation_oncology", RADIATION),
                                ("medical_oncology", MEDICAL)):
        review = reviews[discipline]
        c = clients[discipline] = _client(app, review.reviewer.email)
        assert f"/cases/{case_id}/sections/{review.id}".encode() in c.get(f"/cases/{case_id}").data
        saved = c.post(f"/cases/{case_id}/sections/{review.id}/autosave", data={"version": "0", **content},
                       headers=FETCH)
        assert saved.status_code == 200
        signed = c.post(f"/cases/{case_id}/sections/{review.id}/sign",
                        data={"version": str(saved.json["version"]), "attest": "y", "password": PASSWORD})
        assert signed.status_code == 302
    lead = clients["medical_oncology"]
    for discipline, data in (("radiology", {"position": "agree"}),
                             ("radiation_oncology", {"position": "dissent", "dissent_text": DISSENT})):
        section = section_of_review(db, reviews[discipline].id)
        assert lead.post(f"/cases/{case_id}/sections/{section.id}/position", data=data).status_code == 302
    board = lead.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Dissents" in board and DISSENT in board and "Write the consensus" in board
    assert lead.post(f"/cases/{case_id}/opinion/autosave", headers=FETCH, data={
        "version": "0", "diagnosis_concordance": "refined", "reviewer_diagnosis": "IDC with a suspicious node.",
        "rationale": "The board's consensus.", "plan_concordance": "modify",
        "recommended_plan": "Biopsy the node; neoadjuvant therapy if positive."}).status_code == 200
    assert lead.post(f"/cases/{case_id}/opinion/sign", data={"attest": "y", "password": PASSWORD}).status_code == 302
    db.expire_all()
    assert db.get(Case, case_id).status == "letter_delivered"
    referrer = _client(app, users["referring"].email)
    [letter] = letters_for_case(db, case_id)
    text = _pdf_text(referrer.get(f"/cases/{case_id}/letters/{letter.id}.pdf").data)
    assert text.index("Biopsy the node; neoadjuvant therapy") < text.index("MULTIDISCIPLINARY REVIEW")
    for expected in ("Radiology section electronically signed by Radiologist",
                     "Radiation oncology section electronically signed by Rad Onc, FRCR",
                     "Medical oncology section electronically signed by Reviewer, MD",
                     RADIOLOGY["impression"], RADIATION["plan"], MEDICAL["plan"],
                     "Rad Onc, FRCR (Radiation oncology) dissents from the consensus", f"“{DISSENT}”"):
        assert expected in text, expected

    # The radiologist amends the signed section: the letter is re-issued as version 2; the section is unchanged.
    section = section_of_review(db, reviews["radiology"].id)
    r = clients["radiology"].post(f"/cases/{case_id}/sections/{section.id}/addenda", data={
        "reason": "satellite nodule", "text": "A 4 mm satellite nodule 2 cm from the index lesion.", "attest": "y",
        "password": PASSWORD})
    assert r.status_code == 302
    db.expire_all()
    latest = letters_for_case(db, case_id)[0]
    assert latest.version == 2 and "Radiology section addendum 1" in latest.change_summary
    text = _pdf_text(referrer.get(f"/cases/{case_id}/letters/{latest.id}.pdf").data)
    assert "A 4 mm satellite nodule 2 cm from the index lesion." in text and f"“{DISSENT}”" in text
    assert "a consensus addendum is needed" in lead.get(f"/cases/{case_id}").get_data(as_text=True)
    # Nobody but the author amends a section; a wrong password signs nothing.
    assert lead.post(f"/cases/{case_id}/sections/{section.id}/addenda", data={
        "text": "x", "attest": "y", "password": PASSWORD}).status_code == 403
    assert clients["radiology"].post(f"/cases/{case_id}/sections/{section.id}/addenda", data={
        "text": "x", "attest": "y", "password": "wrong"}).status_code == 400
    db.expire_all()
    assert len(letters_for_case(db, case_id)) == 2
