"""The multidisciplinary opinion: sections per contributing review (autosave with versions, signing with the
password, waivers), the consensus gate, the contributors' positions and the chair."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.errors import (
    ConcurrentEdit,
    IllegalTransition,
    InvalidInput,
    PermissionDenied,
)
from review_portal.opinions.section_lifecycle import (
    SECTION_TRANSITIONS,
    SectionStatus,
    can_transition_section,
)
from review_portal.opinions.sections import (
    add_section_addendum,
    name_chair,
    record_position,
    save_section,
    section_of_review,
    sign_section,
    waive_section,
)
from review_portal.opinions.services import OpinionDraft, SignatureRefused, save_draft
from review_portal.workflow.signing import sign_and_issue_letter
from tests.board_helpers import (
    MEDICAL,
    RADIATION,
    RADIOLOGY,
    make_radiation_oncologist,
    three_discipline_case,
)
from tests.conftest import INSTITUTION, NOW, PASSWORD

CTX = {"ip": "127.0.0.1"}
T1 = NOW + timedelta(hours=1)


@pytest.fixture
def board(db, make_case, users):
    make_radiation_oncologist(db, users)
    return three_discipline_case(db, make_case, users)


def _sign(db, case, review, content, when=T1):
    save_section(db, case, review, content, based_on_version=None, by=review.reviewer, now=when, **CTX)
    return sign_section(db, case, review, password=PASSWORD, attested=True, by=review.reviewer, now=when, **CTX)


def _consensus_draft(db, case, lead):
    save_draft(db, case, OpinionDraft("confirmed", "modify", "IDC, cT2N0.", "Surgery, RT, endocrine therapy.",
                                      "Board consensus."), based_on_version=None, by=lead, now=T1, **CTX)


@pytest.mark.parametrize("current,target,allowed", [
    ("draft", "signed", True), ("draft", "waived", True), ("signed", "draft", False), ("signed", "waived", False),
    ("waived", "signed", False), ("recorded", "signed", False)])
def test_the_section_table(current, target, allowed):
    assert can_transition_section(current, target) is allowed
    assert set(SECTION_TRANSITIONS) == set(SectionStatus)


def test_autosave_versions_refuse_a_stale_tab_and_unknown_fields(db, board):
    case, reviews = board
    rad = reviews["radiology"]
    first = save_section(db, case, rad, {"findings": "draft"}, based_on_version=0, by=rad.reviewer, now=T1, **CTX)
    assert first.kind == "radiology" and first.version == 1 and first.author_id == rad.reviewer.id
    save_section(db, case, rad, {"findings": "second"}, based_on_version=1, by=rad.reviewer, now=T1, **CTX)
    assert first.version == 2
    with pytest.raises(ConcurrentEdit):
        save_section(db, case, rad, {"findings": "stale"}, based_on_version=1, by=rad.reviewer, now=T1, **CTX)
    with pytest.raises(InvalidInput, match="unknown field 'plan'"):
        save_section(db, case, rad, {"plan": "x"}, based_on_version=2, by=rad.reviewer, now=T1, **CTX)
    with pytest.raises(InvalidInput, match="unknown radpeer score"):
        save_section(db, case, rad, {"radpeer_score": "9"}, based_on_version=2, by=rad.reviewer, now=T1, **CTX)
    with pytest.raises(PermissionDenied):  # another reviewer of the same case
        save_section(db, case, rad, {"findings": "x"}, based_on_version=2, by=reviews["medical_oncology"].reviewer,
                     now=T1, **CTX)
    assert section_of_review(db, rad.id).content["findings"] == "second"


def test_signing_needs_the_password_and_the_fields_then_freezes(db, board):
    case, reviews = board
    rad = reviews["radiology"]
    save_section(db, case, rad, {"findings": "Mass."}, based_on_version=None, by=rad.reviewer, now=T1, **CTX)
    with pytest.raises(SignatureRefused):
        sign_section(db, case, rad, password="wrong", attested=True, by=rad.reviewer, now=T1, **CTX)
    with pytest.raises(InvalidInput, match="impression, RADPEER score"):
        sign_section(db, case, rad, password=PASSWORD, attested=True, by=rad.reviewer, now=T1, **CTX)
    with pytest.raises(InvalidInput, match="RADPEER 3b needs one"):
        save_section(db, case, rad, {**RADIOLOGY, "radpeer_score": "3b"}, based_on_version=None, by=rad.reviewer,
                     now=T1, **CTX)
        sign_section(db, case, rad, password=PASSWORD, attested=True, by=rad.reviewer, now=T1, **CTX)
    section = _sign(db, case, rad, RADIOLOGY)
    assert section.status == "signed" and len(section.content_sha256) == 64 and section.signed_at == T1
    assert rad.status == "completed"  # the contributing review is done with its section
    with pytest.raises(IllegalTransition, match="section addendum"):
        save_section(db, case, rad, RADIOLOGY, based_on_version=None, by=rad.reviewer, now=T1, **CTX)
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id,
                                                         AuditEvent.action.like("section.%"))).all()
    assert "section.signed" in actions and "section.sign_refused" in actions


def test_the_consensus_waits_for_every_section_and_position_naming_them(db, storage, board, users):
    case, reviews = board
    lead = reviews["medical_oncology"].reviewer
    _consensus_draft(db, case, lead)
    with pytest.raises(IllegalTransition) as err:
        sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION, by=lead,
                              now=T1, **CTX)
    assert "Radiology (Radiologist, not started)" in err.value.message
    assert "Radiation oncology (Rad Onc, not started)" in err.value.message
    rad_section = _sign(db, case, reviews["radiology"], RADIOLOGY)
    with pytest.raises(InvalidInput, match="Say why"):
        waive_section(db, case, reviews["radiation_oncology"], reason=" ", by=users["coordinator"], now=T1, **CTX)
    with pytest.raises(PermissionDenied):
        waive_section(db, case, reviews["radiation_oncology"], reason="away", by=lead, now=T1, **CTX)
    waived = waive_section(db, case, reviews["radiation_oncology"], reason="Radiation oncologist on leave; "
                           "discussed by phone.", by=users["coordinator"], now=T1, **CTX)
    assert waived.status == "waived" and reviews["radiation_oncology"].status == "cancelled"
    with pytest.raises(IllegalTransition, match=r"no position recorded .*Radiology \(Radiologist\)"):
        sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION, by=lead,
                              now=T1, **CTX)
    with pytest.raises(InvalidInput, match="own words"):
        record_position(db, case, rad_section, position="dissent", by=lead, now=T1, **CTX)
    position = record_position(db, case, rad_section, position="dissent", quote_section=True, by=lead, now=T1, **CTX)
    assert position.dissent_text == RADIOLOGY["impression"] and position.dissent_source == "section"
    letter = sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                                   by=lead, now=T1, **CTX)
    assert letter.version == 1 and case.status == "letter_delivered"
    with pytest.raises(IllegalTransition, match="positions on it can no longer change"):
        record_position(db, case, rad_section, position="agree", by=lead, now=T1, **CTX)


def test_a_started_lead_section_must_be_signed_too(db, storage, board, users):
    case, reviews = board
    lead_review = reviews["medical_oncology"]
    save_section(db, case, lead_review, {"plan": "half"}, based_on_version=None, by=lead_review.reviewer, now=T1, **CTX)
    for d in ("radiology", "radiation_oncology"):
        waive_section(db, case, reviews[d], reason="not needed", by=users["coordinator"], now=T1, **CTX)
    _consensus_draft(db, case, lead_review.reviewer)
    with pytest.raises(IllegalTransition, match=r"Medical oncology \(Reviewer, draft\)"):
        sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                              by=lead_review.reviewer, now=T1, **CTX)
    _sign(db, case, lead_review, MEDICAL)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                          by=lead_review.reviewer, now=T1, **CTX)
    assert case.status == "letter_delivered"


def test_a_chair_passes_the_reviewer_checks_and_then_writes_the_consensus(db, board, users):
    case, reviews = board
    with pytest.raises(InvalidInput, match="accepted one of its reviews"):
        name_chair(db, case, users["other_reviewer"], reason="board chair", by=users["coordinator"], now=T1, **CTX)
    with pytest.raises(PermissionDenied):
        name_chair(db, case, users["radiologist"], reason="x", by=users["reviewer"], now=T1, **CTX)
    chair = reviews["radiation_oncology"].reviewer
    name_chair(db, case, chair, reason="Chairs Monday's breast board", by=users["coordinator"], now=T1, **CTX)
    with pytest.raises(PermissionDenied):  # the lead no longer writes the consensus
        _consensus_draft(db, case, reviews["medical_oncology"].reviewer)
    _consensus_draft(db, case, chair)
    assert db.scalar(select(AuditEvent.detail).where(AuditEvent.action == "case.chair_named")) == \
        "Chairs Monday's breast board"


def test_a_conflicted_chair_is_refused(db, board, users):
    case, reviews = board
    chair = reviews["radiology"].reviewer
    chair.institution_id = case.referring.institution_id
    with pytest.raises(InvalidInput, match="conflict of interest"):
        name_chair(db, case, chair, reason="", by=users["coordinator"], now=T1, **CTX)


def test_section_addendum_after_the_consensus_is_marked_for_a_consensus_addendum(db, storage, board, users):
    case, reviews = board
    rad = reviews["radiology"]
    section = _sign(db, case, rad, RADIOLOGY)
    _sign(db, case, reviews["radiation_oncology"], RADIATION)
    lead = reviews["medical_oncology"].reviewer
    for s in (section, section_of_review(db, reviews["radiation_oncology"].id)):
        record_position(db, case, s, position="agree", by=lead, now=T1, **CTX)
    with pytest.raises(PermissionDenied):
        add_section_addendum(db, case, section, "x", password=PASSWORD, attested=True, by=lead, now=T1, **CTX)
    before = add_section_addendum(db, case, section, "Node re-measured: 9 mm.", password=PASSWORD, attested=True,
                                  by=rad.reviewer, now=T1, **CTX)
    assert before.after_consensus is False and before.number == 1
    _consensus_draft(db, case, lead)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION, by=lead,
                          now=T1, **CTX)
    after = add_section_addendum(db, case, section, "Second look: a 4 mm satellite.", reason="satellite",
                                 password=PASSWORD, attested=True, by=rad.reviewer, now=T1 + timedelta(days=1), **CTX)
    assert after.after_consensus is True and after.number == 2 and section.status == "signed"
    assert section.content["impression"] == RADIOLOGY["impression"]  # the signed section is unchanged


def test_the_chair_signs_the_consensus_and_amends_it(db, storage, board, users):
    case, reviews = board
    chair_review = reviews["radiation_oncology"]
    chair = chair_review.reviewer
    name_chair(db, case, chair, reason="Chairs the board", by=users["coordinator"], now=T1, **CTX)
    section = _sign(db, case, chair_review, RADIATION)
    waive_section(db, case, reviews["radiology"], reason="Images not readable; re-read elsewhere.",
                  by=users["coordinator"], now=T1, **CTX)
    record_position(db, case, section, position="agree", by=chair, now=T1, **CTX)
    _consensus_draft(db, case, chair)
    letter = sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                                   by=chair, now=T1, **CTX)
    assert letter.version == 1 and letter.case.status == "letter_delivered"
    from review_portal.workflow.signing import sign_addendum

    with pytest.raises(PermissionDenied):  # the lead did not sign this consensus
        sign_addendum(db, storage, case, "x", reason="", password=PASSWORD, attested=True,
                      by=reviews["medical_oncology"].reviewer, now=T1, institution=INSTITUTION, **CTX)
    second = sign_addendum(db, storage, case, "Fractionation confirmed.", reason="", password=PASSWORD, attested=True,
                           by=chair, now=T1 + timedelta(hours=1), institution=INSTITUTION, **CTX)
    assert second.version == 2
