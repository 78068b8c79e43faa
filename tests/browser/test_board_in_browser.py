"""A three-discipline case in chromium: radiology, radiation oncology and medical oncology sections written
(autosaved) and signed by their authors, one dissent, the consensus signed last, one letter read back with pypdf
holding every section, signer and dissent, then an addendum to one section re-issuing the letter."""
import pytest
from pypdf import PdfReader

from review_portal.letters.services import letters_for_case
from review_portal.opinions.sections import section_of_review
from tests.board_helpers import make_radiation_oncologist, three_discipline_case
from tests.browser.test_loop_in_browser import login, logout, wait_until
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

SAVED = "document.getElementById('save-state').dataset.state === 'saved'"
DISSENT = "Irradiate the regional nodes whatever the biopsy shows."


def _section(page, base, app, case, review, fill):
    login(page, base, review.reviewer.email, app=app)
    page.goto(f"{base}/cases/{case.id}")
    page.click(f"#section-row-{review.id} >> text=Write your section")
    page.wait_for_url(f"{base}/cases/{case.id}/sections/{review.id}")
    fill(page)
    wait_until(page, SAVED)  # nobody pressed Save
    page.check("#attest")
    page.fill("form.sign #password", PASSWORD)
    page.click("text=Sign section")
    page.wait_for_url(f"{base}/cases/{case.id}#board")
    assert "Signed" in page.locator(f"#section-row-{review.id}").inner_text()
    logout(page)


def _radiology(page):
    page.fill("#findings", "24 mm irregular mass; 11 mm axillary node with a thick cortex.")
    page.fill("#impression", "The axillary node is suspicious.")
    page.check("input[name=radpeer_score][value='2a']")
    page.fill("#staging", "cT2 cN1")


def _radiation(page):
    page.check("input[name=plan_concordance][value=modify]")
    page.fill("#plan", "Regional nodal irradiation after surgery.")
    page.fill("#rationale", "Nodal disease changes the fields.")


def _medical(page):
    page.check("input[name=plan_concordance][value=modify]")
    page.fill("#plan", "Node biopsy first; neoadjuvant therapy if positive.")
    page.fill("#rationale", "A positive node changes the sequence.")


def test_a_tumor_board_case_from_sections_to_letter_and_a_section_addendum(app, live_server, page, db, make_case,
                                                                            users):
    base = live_server
    make_radiation_oncologist(db, users)
    case, reviews = three_discipline_case(db, make_case, users)
    for discipline, fill in (("radiology", _radiology), ("radiation_oncology", _radiation),
                             ("medical_oncology", _medical)):
        _section(page, base, app, case, reviews[discipline], fill)

    # The lead records the positions beside the sections, then writes and signs the consensus.
    login(page, base, reviews["medical_oncology"].reviewer.email, app=app)
    page.goto(f"{base}/board")
    assert case.reference in page.locator(".board-agenda").inner_text()
    page.click(f"text={case.reference}")
    db.expire_all()
    rad = section_of_review(db, reviews["radiology"].id)
    rt = section_of_review(db, reviews["radiation_oncology"].id)
    page.check(f"#section-row-{reviews['radiology'].id} input[value=agree]")
    page.click(f"#section-row-{reviews['radiology'].id} >> text=Record position")
    page.check(f"#section-row-{reviews['radiation_oncology'].id} input[value=dissent]")
    page.fill(f"#dissent-{rt.id}", DISSENT)
    page.click(f"#section-row-{reviews['radiation_oncology'].id} >> text=Record position")
    assert DISSENT in page.locator(f"#section-row-{reviews['radiation_oncology'].id}").inner_text()
    page.click("text=Write the consensus")
    page.check("input[name=diagnosis_concordance][value=refined]")
    page.fill("#reviewer_diagnosis", "IDC with a suspicious axillary node.")
    page.fill("#rationale", "The board's consensus: the node decides the sequence.")
    page.check("input[name=plan_concordance][value=modify]")
    page.fill("#recommended_plan", "Biopsy the node; neoadjuvant therapy if positive.")
    wait_until(page, SAVED)
    page.check("#attest")
    page.fill("form.sign #password", PASSWORD)
    page.click("text=Sign opinion and issue letter")
    page.wait_for_url(f"{base}/cases/{case.id}")
    assert "Letter delivered" in page.locator(".head-badges").inner_text()
    logout(page)

    # One letter: the referrer downloads it.
    login(page, base, users["referring"].email)
    page.goto(f"{base}/cases/{case.id}/letters")
    with page.expect_download() as download_info:
        page.click("text=Version 1 (PDF)")
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(download_info.value.path()).pages).split())
    assert text.index("Biopsy the node; neoadjuvant therapy") < text.index("MULTIDISCIPLINARY REVIEW")
    for expected in ("Radiology section electronically signed by Radiologist",
                     "Radiation oncology section electronically signed by Rad Onc, FRCR",
                     "Medical oncology section electronically signed by Reviewer, MD",
                     "The axillary node is suspicious.", "Regional nodal irradiation after surgery.",
                     "Node biopsy first; neoadjuvant therapy if positive.",
                     "Rad Onc, FRCR (Radiation oncology) dissents from the consensus", f"“{DISSENT}”"):
        assert expected in text, expected
    logout(page)

    # The radiologist amends the signed section: the letter goes out again as version 2.
    login(page, base, reviews["radiology"].reviewer.email, app=app)
    page.goto(f"{base}/cases/{case.id}")
    page.click(f"#section-row-{reviews['radiology'].id} >> text=Add a section addendum")
    page.fill(f"#addendum-reason-{rad.id}", "satellite nodule")
    page.fill(f"#addendum-text-{rad.id}", "A 4 mm satellite nodule 2 cm from the index lesion.")
    page.check(f"#addendum-attest-{rad.id}")
    page.fill(f"#addendum-password-{rad.id}", PASSWORD)
    page.click("text=Sign the section addendum")
    page.wait_for_url(f"{base}/cases/{case.id}#board")
    assert "Letter version 2 delivered" in page.locator(".flashes").inner_text()
    db.expire_all()
    assert [v.version for v in letters_for_case(db, case.id)] == [2, 1]
