"""The multidisciplinary letter: the consensus first, then each signed section with its author, discipline and
signature time, then every dissent in its author's words; a section addendum after the consensus re-issues
the letter as a new version, and the FHIR report carries one result per section (read back, validated, and
parsed as strict R4)."""
import io
from datetime import timedelta

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pypdf import PdfReader

from review_portal.letters.fhir import diagnostic_report
from review_portal.letters.services import letters_for_case
from review_portal.notifications.models import Notification
from review_portal.opinions.sections import (
    open_section_addenda,
    section_of_review,
)
from review_portal.opinions.services import opinion_for_case
from review_portal.workflow.boards import sign_section_addendum
from review_portal.workflow.signing import add_addendum
from tests.board_helpers import DISSENT, MEDICAL, RADIATION, RADIOLOGY, sign_board
from tests.conftest import INSTITUTION, NOW, PASSWORD

CTX = {"ip": "127.0.0.1"}
T1 = NOW + timedelta(hours=1)


def text_of(pdf: bytes) -> str:
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def signed_board(db, storage, make_case, users):
    return sign_board(db, storage, make_case, users)


def test_one_letter_has_the_consensus_then_every_section_signer_and_dissent(storage, signed_board):
    _, _, letter = signed_board
    text = text_of(storage.read_verified(letter.blob_key))
    consensus = text.index("Breast-conserving surgery, then radiotherapy")
    sections = text.index("MULTIDISCIPLINARY REVIEW: THE SECTIONS")  # headings are set in capitals
    dissent = text.index("dissents from the consensus")
    assert consensus < sections < dissent
    for signed in ("Radiology section electronically signed by Radiologist, 23 November 2026, 10:10 UTC",
                   "Radiation oncology section electronically signed by Rad Onc, FRCR, 23 November 2026, 10:20 UTC",
                   "Medical oncology section electronically signed by Reviewer, MD, 23 November 2026, 10:30 UTC"):
        assert signed in text
    assert RADIOLOGY["impression"] in text and RADIATION["plan"] in text and MEDICAL["plan"] in text
    assert "2a – Understandable miss" in text  # the coded answer in words
    assert "Rad Onc, FRCR (Radiation oncology) dissents from the consensus" in text
    assert f"“{DISSENT}”" in text
    assert "Agreed with the consensus: Radiologist (Radiology)" in text


def test_a_section_addendum_after_the_consensus_reissues_the_letter_and_asks_a_consensus_addendum(
        db, storage, signed_board):
    case, reviews, first = signed_board
    rad = reviews["radiology"]
    section = section_of_review(db, rad.id)
    later = T1 + timedelta(days=1)
    letter = sign_section_addendum(db, storage, case, section, "On second look a 4 mm satellite nodule, 2 cm from "
                                   "the index lesion.", reason="satellite nodule", password=PASSWORD, attested=True,
                                   by=rad.reviewer, now=later, ip="127.0.0.1", institution=INSTITUTION)
    assert letter.version == 2 and letter.change_summary == "Radiology section addendum 1 of 24 November 2026: " \
        "satellite nodule."
    text = text_of(storage.read_verified(letter.blob_key))
    assert "Radiology section addendum 1: satellite nodule" in text and "4 mm satellite nodule" in text
    assert "Amended letter: version 2" in text
    assert storage.read_verified(first.blob_key) != storage.read_verified(letter.blob_key)  # version 1 kept as was
    lead = reviews["medical_oncology"].reviewer
    assert [n.kind for n in db.query(Notification).filter_by(user_id=lead.id, kind="consensus_addendum")] == \
        ["consensus_addendum"]
    assert len(open_section_addenda(db, case.id)) == 1
    third = add_addendum(db, storage, case, "The satellite nodule does not change the plan: margins will include it.",
                         reason="answer to the radiology addendum", by=lead, now=later + timedelta(hours=1),
                         ip="127.0.0.1", institution=INSTITUTION)
    assert third.version == 3 and open_section_addenda(db, case.id) == []
    assert [v.version for v in letters_for_case(db, case.id)] == [3, 2, 1]


def test_the_fhir_report_carries_one_result_per_section_and_parses_as_strict_r4(db, storage, signed_board):
    case, _, letter = signed_board
    opinion = opinion_for_case(db, case.id)
    resource = diagnostic_report(case, opinion, letter, storage.read_verified(letter.blob_key))
    DiagnosticReport.model_validate(resource)
    observations = {c["id"]: c for c in resource["contained"] if c["resourceType"] == "Observation"}
    assert [r["display"] for r in resource["result"]] == ["Radiology section", "Radiation oncology section",
                                                          "Medical oncology section"]
    assert observations["section-2"]["performer"] == [{"display": "Rad Onc, FRCR"}]
    assert observations["section-1"]["issued"] == "2026-11-23T10:10:00Z"
    assert RADIATION["plan"] in observations["section-2"]["valueString"]
    assert f"Dissent – Rad Onc, FRCR (Radiation oncology): {DISSENT}" in resource["conclusion"]
    from fhirclient.models.diagnosticreport import DiagnosticReport as R4
    from fhirclient.models.fhirabstractbase import FHIRValidationError

    parsed = R4(resource, strict=True)
    assert len(parsed.result) == 3 and parsed.contained[1].valueString.startswith("Findings:")
    with pytest.raises(FHIRValidationError):  # strict R4: an element R4 does not define is refused
        R4({**resource, "unknownElement": 1}, strict=True)
