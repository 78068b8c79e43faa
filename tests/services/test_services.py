"""The domain services called directly: routing, reassignment, due dates, the opinion and letter
life cycle, withdrawal, the audit trail written in the caller's transaction, and intake of
documents and scans."""
from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pypdf import PdfWriter
from sqlalchemy import func, select

from review_portal.assignment.models import Assignment
from review_portal.assignment.routing import RoutingFacts, choose_reviewer, ineligibility, open_case_counts, profiles_by_user
from review_portal.workflow.assignments import accept_offer, reassign_case, route_review
from review_portal.audit.models import AuditEvent
from review_portal.auth.models import Role
from review_portal.auth.services import create_user
from review_portal.cases.models import Case, Document
from review_portal.uploads import UploadedFile
from review_portal.cases.services import close_case, withdraw_case
from review_portal.workflow.referrals import submit_referral
from review_portal.errors import ConcurrentEdit, IllegalTransition, InvalidInput, PermissionDenied
from review_portal.imaging.models import Instance, Series
from review_portal.imaging.services import ingest_scans
from review_portal.letters.models import Letter
from review_portal.letters.services import acknowledge_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD, TURNAROUND, referral, testdata

from review_portal.opinions.services import OpinionDraft, opinion_for_case, save_draft, sign_opinion, signed_content_hash
from review_portal.workflow.signing import sign_and_issue_letter

IP = "10.0.0.7"
FULL_DRAFT = OpinionDraft("confirmed", "agree", "IDC grade 2, ER+.", "Surgery first.", "Biopsy is conclusive.", "")


# --------------------------------------------------------------------------- helpers


def add_reviewer(db, key, *, institution, specialty="medical_oncology", sites=("breast",)):
    user = create_user(db, email=f"{key}@test.example", name=key.title(), password=PASSWORD, role=Role.REVIEWER,
                       now=NOW + timedelta(minutes=1), institution=institution, specialty=specialty,
                       sites=list(sites))
    db.commit()
    return user


def submit(db, storage, users, *, by=None, documents=(), scans=(), now=NOW, **overrides):
    case, report = submit_referral(db, storage, referral(**overrides), documents=list(documents), scans=list(scans),
                                   by=by or users["referring"], ip=IP, now=now, turnaround_days=TURNAROUND)
    db.commit()
    return case, report


def routing_facts(db) -> RoutingFacts:
    """What automatic routing knows right now: real loads and profiles, nobody away."""
    return RoutingFacts(load=open_case_counts(db), profiles=profiles_by_user(db), absences={})


def accept(db, case, users, *, now=NOW):
    """The routed reviewer accepts the offer: the case is then in review and the opinion may be drafted."""
    accept_offer(db, case.active_assignment, by=users["reviewer"], ip=IP, now=now)
    db.commit()
    return case


def drafted(db, make_case, users, draft=None):
    """An accepted case with a complete draft, committed (what signing starts from)."""
    case = make_case("in_review")
    save_draft(db, case, draft or FULL_DRAFT, based_on_version=0, by=users["reviewer"], ip=IP, now=NOW)
    db.commit()
    return case


def audit_rows(db, action, case_id):
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.case_id == case_id)).all()


def count(db, model):
    return db.scalar(select(func.count()).select_from(model))


def stored_blobs(storage) -> set[Path]:
    return {p for p in storage.root.rglob("*") if p.is_file() and storage._tmp not in p.parents}


def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def upload(tmp_path, name, data: bytes) -> UploadedFile:
    path = tmp_path / f"upload-{len(list(tmp_path.iterdir()))}-{name}"
    path.write_bytes(data)
    return UploadedFile(name, path)


def dicom_upload(tmp_path, testfile, name=None) -> UploadedFile:
    return upload(tmp_path, name or testfile, testdata(testfile).read_bytes())


# --------------------------------------------------------------------------- routing


def test_routing_tie_goes_to_the_oldest_account_then_to_the_least_loaded(db, storage, users):
    centre = users["reviewer"].institution
    second = add_reviewer(db, "second_oncologist", institution=centre)
    assert second.id > users["reviewer"].id

    first_case, _ = submit(db, storage, users)
    assert first_case.reviewer.id == users["reviewer"].id  # 0 vs 0 open: the lower id wins
    assignment = first_case.active_assignment
    assert assignment.assigned_by_id is None and assignment.reason.startswith("Automatic")

    second_case, _ = submit(db, storage, users)
    assert second_case.reviewer.id == second.id  # 1 vs 0 open

    third_case, _ = submit(db, storage, users)
    assert third_case.reviewer.id == users["reviewer"].id  # 1 vs 1: the tie-break again


def test_routing_picks_the_reviewer_with_fewer_open_cases(db, storage, users):
    a1, _ = submit(db, storage, users)
    a2, _ = submit(db, storage, users)
    assert a1.reviewer.id == a2.reviewer.id == users["reviewer"].id  # the only eligible one so far
    second = add_reviewer(db, "second_oncologist", institution=users["reviewer"].institution)
    b1, _ = submit(db, storage, users)
    b2, _ = submit(db, storage, users)
    assert b1.reviewer.id == b2.reviewer.id == second.id  # 0 < 2, then 1 < 2
    # Withdrawn cases are no longer load: second drops to 0 open against 2.
    for case in (b1, b2):
        withdraw_case(db, case, reason="duplicate", by=users["referring"], ip=IP, now=NOW)
    db.commit()
    c, _ = submit(db, storage, users)
    assert c.reviewer.id == second.id


def test_routing_matches_specialty_and_site(db, storage, users):
    read, _ = submit(db, storage, users, review_type="radiology_read", cancer_site="thoracic")
    assert read.reviewer.id == users["radiologist"].id
    gi, _ = submit(db, storage, users, cancer_site="gi")
    assert gi.reviewer.id == users["other_reviewer"].id


def test_routing_never_picks_a_reviewer_at_the_referring_institution(db, storage, users):
    hospital = users["referring"].institution
    insider = add_reviewer(db, "hospital_oncologist", institution=hospital)
    # Make the only outside reviewer the busiest by far: the insider has no load at all.
    for _ in range(3):
        submit(db, storage, users)
    case, _ = submit(db, storage, users)
    assert case.reviewer.id == users["reviewer"].id
    facts = routing_facts(db)
    assert facts.load.get(insider.id, 0) == 0 and facts.load[users["reviewer"].id] == 4
    assert ineligibility(insider, case, case.review_type, facts) == \
        "works at the referring institution (conflict of interest)"
    assert insider.id not in {a.reviewer_id for a in db.scalars(select(Assignment))}
    with pytest.raises(InvalidInput, match="referring institution"):
        reassign_case(db, case, insider, by=users["coordinator"], ip=IP, now=NOW)


def test_routing_never_picks_the_referring_physician(db, storage, users):
    # A physician without an institution (so the institution rule cannot be what excludes them)
    # who refers a case and is later also given a reviewer role covering that site.
    dual = create_user(db, email="dual@test.example", name="Dual Role", password=PASSWORD, role=Role.REFERRING,
                       now=NOW, institution=None)
    db.commit()
    case, _ = submit(db, storage, users, by=dual, cancer_site="pediatric")
    assert case.status == "triage"
    dual.role, dual.specialty, dual.sites = Role.REVIEWER, "medical_oncology", ["pediatric"]
    db.commit()
    assert ineligibility(dual, case, case.review_type, routing_facts(db)) == "is the referring physician"
    assert choose_reviewer(db, case.lead_review, NOW).reviewer is None
    with pytest.raises(InvalidInput, match="referring physician"):
        reassign_case(db, case, dual, by=users["coordinator"], ip=IP, now=NOW)
    # Control: an unrelated pediatric oncologist is chosen when the triaged review is routed again.
    paeds = add_reviewer(db, "paediatric_oncologist", institution=users["reviewer"].institution, sites=["pediatric"])
    route_review(db, case.lead_review, by=users["coordinator"], ip=IP, now=NOW)
    assert case.status == "assigned" and case.reviewer.id == paeds.id


def test_no_eligible_reviewer_sends_the_case_to_triage_with_an_audit_record(db, storage, users):
    case, _ = submit(db, storage, users, cancer_site="pediatric")
    assert case.status == "triage"
    assert case.active_assignment is None and case.lead_review.status == "triage"
    assert db.scalar(select(func.count()).select_from(Assignment).where(Assignment.case_id == case.id)) == 0
    [event] = audit_rows(db, "case.routing_failed", case.id)
    assert "pediatric" in event.detail.lower()
    assert event.actor_id == users["referring"].id and event.source_ip == IP


# --------------------------------------------------------------------------- reassignment


def test_reassign_refuses_an_ineligible_reviewer(db, make_case, users):
    case = make_case("assigned")
    before = count(db, Assignment)
    for person, reason in [(users["other_reviewer"], "does not cover breast"), (users["radiologist"], "specialty"),
                           (users["reviewer"], "already holds this review"),
                           (users["coordinator"], "not an active reviewer")]:
        with pytest.raises(InvalidInput, match=reason):
            reassign_case(db, case, person, by=users["coordinator"], ip=IP, now=NOW)
    assert count(db, Assignment) == before
    assert case.reviewer.id == users["reviewer"].id


def test_reassign_moves_an_in_review_case_to_the_new_reviewer(db, make_case, users):
    case = make_case("in_review")
    second = add_reviewer(db, "second_oncologist", institution=users["reviewer"].institution)
    old = case.active_assignment
    later = NOW + timedelta(days=1)
    new = reassign_case(db, case, second, by=users["coordinator"], ip=IP, now=later, note="on leave")
    db.commit()
    assert case.status == "assigned"
    assert case.reviewer.id == second.id
    assert old.active is False and old.ended_at == later
    assert new.assigned_by_id == users["coordinator"].id and "on leave" in new.reason
    assert [a.reviewer_id for a in case.assignments if a.active] == [second.id]


def test_reassign_of_a_signed_case_is_refused(db, make_case, users):
    case = make_case("letter_delivered")
    second = add_reviewer(db, "second_oncologist", institution=users["reviewer"].institution)
    with pytest.raises(IllegalTransition):
        reassign_case(db, case, second, by=users["coordinator"], ip=IP, now=NOW)


# --------------------------------------------------------------------------- due dates

MONDAY = NOW  # 2026-11-23 09:00 UTC
FRIDAY = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
SATURDAY = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("start, priority, due", [
    (MONDAY, "routine", datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)),   # Mon -> next Mon
    (FRIDAY, "routine", datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)),    # Fri -> next Fri, weekend skipped
    (SATURDAY, "routine", datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)),  # Sat counts from Mon
    (MONDAY, "urgent", datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)),    # Mon -> Wed
    (FRIDAY, "urgent", datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)),     # Fri -> Tue
])
def test_due_date_counts_business_days(db, storage, users, start, priority, due):
    case, _ = submit(db, storage, users, priority=priority, now=start)
    db.expire_all()
    case = db.get(Case, case.id)
    assert case.submitted_at == start
    assert case.due_at == due


# --------------------------------------------------------------------------- opinion drafting


def test_accepting_the_offer_moves_assigned_to_in_review_and_opens_the_draft(db, make_case, users):
    case = make_case("assigned")
    # An offer not yet accepted cannot be worked on: no draft, and the case stays offered.
    with pytest.raises(PermissionDenied):
        save_draft(db, case, FULL_DRAFT, based_on_version=0, by=users["reviewer"], ip=IP, now=NOW)
    db.rollback()
    assert opinion_for_case(db, case.id) is None and db.get(Case, case.id).status == "assigned"
    accept(db, case, users)
    assert case.status == "in_review" and case.active_assignment.status == "accepted"
    opinion = save_draft(db, case, FULL_DRAFT, based_on_version=0, by=users["reviewer"], ip=IP, now=NOW)
    db.commit()
    assert case.status == "in_review"
    assert opinion.status == "draft" and opinion.version == 1
    assert opinion.reviewer_diagnosis == "IDC grade 2, ER+."


def test_save_draft_with_a_stale_version_is_refused(db, make_case, users):
    case = make_case("in_review")
    reviewer = users["reviewer"]
    first = save_draft(db, case, FULL_DRAFT, based_on_version=0, by=reviewer, ip=IP, now=NOW)
    db.commit()
    loaded_version = first.version
    second = save_draft(db, case, OpinionDraft(rationale="tab A"), based_on_version=loaded_version, by=reviewer,
                        ip=IP, now=NOW)
    db.commit()
    assert second.version == loaded_version + 1
    with pytest.raises(ConcurrentEdit):
        save_draft(db, case, OpinionDraft(rationale="tab B"), based_on_version=loaded_version, by=reviewer, ip=IP, now=NOW)
    db.rollback()
    db.expire_all()
    assert opinion_for_case(db, case.id).rationale == "tab A"


@pytest.mark.parametrize("who", ["other_reviewer", "radiologist", "referring", "coordinator"])
def test_only_the_assigned_reviewer_saves_a_draft(db, make_case, users, who):
    case = make_case("in_review")  # accepted: the assigned reviewer could save now, nobody else
    with pytest.raises(PermissionDenied):
        save_draft(db, case, FULL_DRAFT, based_on_version=0, by=users[who], ip=IP, now=NOW)
    db.rollback()
    assert opinion_for_case(db, case.id) is None
    assert db.get(Case, case.id).status == "in_review"


# --------------------------------------------------------------------------- signing


def test_sign_with_a_wrong_password_is_refused_and_stays_draft(db, make_case, users):
    case = drafted(db, make_case, users)
    with pytest.raises(InvalidInput, match="password"):
        sign_opinion(db, case, password="not-the-password", attested=True, by=users["reviewer"], ip=IP, now=NOW)
    db.rollback()
    db.expire_all()
    assert opinion_for_case(db, case.id).status == "draft"
    assert opinion_for_case(db, case.id).signed_at is None
    assert db.get(Case, case.id).status == "in_review"


def test_sign_without_attestation_is_refused(db, make_case, users):
    case = drafted(db, make_case, users)
    with pytest.raises(InvalidInput, match="reviewed"):
        sign_opinion(db, case, password=PASSWORD, attested=False, by=users["reviewer"], ip=IP, now=NOW)
    assert opinion_for_case(db, case.id).status == "draft"


def test_sign_lists_the_missing_fields(db, make_case, users):
    case = drafted(db, make_case, users, OpinionDraft(diagnosis_concordance="confirmed", reviewer_diagnosis="IDC."))
    with pytest.raises(InvalidInput) as err:
        sign_opinion(db, case, password=PASSWORD, attested=True, by=users["reviewer"], ip=IP, now=NOW)
    message = err.value.message
    for label in ("plan concordance", "recommended plan", "rationale"):
        assert label in message
    assert "diagnosis concordance" not in message and "your diagnosis" not in message
    assert opinion_for_case(db, case.id).status == "draft"
    assert case.status == "in_review"


def test_sign_and_issue_letter_signs_and_delivers(db, storage, make_case, users):
    case = drafted(db, make_case, users)
    signed_at = NOW + timedelta(hours=5)
    letter = sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                                   by=users["reviewer"], ip=IP, now=signed_at)
    db.commit()
    db.expire_all()
    opinion = opinion_for_case(db, case.id)
    assert opinion.status == "signed"
    assert opinion.signed_at == signed_at
    assert opinion.content_sha256 == signed_content_hash(opinion, db.get(Case, case.id))
    assert len(opinion.content_sha256) == 64
    assert db.get(Case, case.id).status == "letter_delivered"
    letter = db.get(Letter, letter.id)
    assert letter.version == 1 and letter.opinion_id == opinion.id and letter.delivered_at == signed_at
    assert storage.read_bytes(letter.blob_key).startswith(b"%PDF-")


def test_signing_twice_is_an_illegal_transition(db, storage, make_case, users):
    case = make_case("letter_delivered")
    opinion = opinion_for_case(db, case.id)
    fingerprint = (opinion.signed_at, opinion.content_sha256)
    with pytest.raises(IllegalTransition):
        sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                              by=users["reviewer"], ip=IP, now=NOW + timedelta(days=1))
    db.rollback()
    db.expire_all()
    opinion = opinion_for_case(db, case.id)
    assert (opinion.signed_at, opinion.content_sha256) == fingerprint
    assert count(db, Letter) == 1


def test_save_draft_after_signing_is_refused(db, make_case, users):
    case = make_case("letter_delivered")
    before = opinion_for_case(db, case.id).rationale
    with pytest.raises((PermissionDenied, IllegalTransition)):
        save_draft(db, case, OpinionDraft(rationale="rewritten afterwards"), based_on_version=None,
                   by=users["reviewer"], ip=IP, now=NOW + timedelta(days=1))
    db.rollback()
    db.expire_all()
    assert opinion_for_case(db, case.id).rationale == before
    assert opinion_for_case(db, case.id).status == "signed"


# --------------------------------------------------------------------------- acknowledgement and withdrawal


def test_acknowledge_then_close_the_case(db, make_case, users):
    case = make_case("letter_delivered")
    at = NOW + timedelta(days=2)
    letter = acknowledge_letter(db, case, by=users["referring"], ip=IP, now=at)
    db.commit()
    # Receipt confirmed, but the case stays open for follow-up questions until it is closed.
    assert case.status == "acknowledged" and case.closed_at is None
    assert letter.acknowledged_at == at and letter.acknowledged_by_id == users["referring"].id
    closed_at = at + timedelta(hours=1)
    close_case(db, case, by=users["referring"], ip=IP, now=closed_at)
    db.commit()
    assert case.status == "closed" and case.closed_at == closed_at


def test_only_a_coordinator_closes_an_unacknowledged_letter(db, make_case, users):
    case = make_case("letter_delivered")
    with pytest.raises(IllegalTransition):
        close_case(db, case, by=users["referring"], ip=IP, now=NOW + timedelta(days=1))
    with pytest.raises(PermissionDenied):
        close_case(db, case, by=users["other_referring"], ip=IP, now=NOW + timedelta(days=1))
    assert case.status == "letter_delivered" and case.closed_at is None
    close_case(db, case, by=users["coordinator"], ip=IP, now=NOW + timedelta(days=1))
    assert case.status == "closed"


@pytest.mark.parametrize("start", ["acknowledged", "closed"])
def test_acknowledge_twice_is_an_illegal_transition(db, make_case, users, start):
    case = make_case(start)
    with pytest.raises(IllegalTransition):
        acknowledge_letter(db, case, by=users["referring"], ip=IP, now=NOW + timedelta(days=3))
    assert case.status == start


def test_only_the_referring_physician_acknowledges(db, make_case, users):
    case = make_case("letter_delivered")
    for who in ("other_referring", "reviewer", "coordinator"):
        with pytest.raises(PermissionDenied):
            acknowledge_letter(db, case, by=users[who], ip=IP, now=NOW)
    assert case.status == "letter_delivered"


def test_withdraw_from_assigned_ends_the_assignment(db, make_case, users):
    case = make_case("assigned")
    assignment = case.active_assignment
    at = NOW + timedelta(hours=4)
    withdraw_case(db, case, reason="patient declined", by=users["referring"], ip=IP, now=at)
    db.commit()
    assert case.status == "withdrawn" and case.closed_at == at
    assert assignment.active is False and assignment.ended_at == at


def test_withdraw_after_the_letter_is_an_illegal_transition(db, make_case, users):
    case = make_case("letter_delivered")
    with pytest.raises(IllegalTransition):
        withdraw_case(db, case, reason="too late", by=users["referring"], ip=IP, now=NOW)
    assert case.status == "letter_delivered"


def test_withdraw_by_a_stranger_is_refused(db, make_case, users):
    case = make_case("assigned")
    for who in ("other_referring", "reviewer"):
        with pytest.raises(PermissionDenied):
            withdraw_case(db, case, reason="x", by=users[who], ip=IP, now=NOW)
    assert case.status == "assigned"


# --------------------------------------------------------------------------- audit in the same transaction


def _second_oncologist(db, users):
    return add_reviewer(db, "second_oncologist", institution=users["reviewer"].institution)


def _case_at(db, make_case, users, start, extra):
    """make_case(start), where "drafted" is an accepted case with a complete draft (what signing needs)."""
    if start == "drafted":
        return drafted(db, make_case, users)
    return make_case(start, **extra)


def _status_of(start):
    return "in_review" if start == "drafted" else start


STATE_CHANGES = {
    # name: (start status, extra case kwargs, action, expected audit actions, status after)
    "assign from triage": ("triage", {"cancer_site": "pediatric"},
                           lambda db, storage, case, users: reassign_case(
                               db, case, add_reviewer(db, "paeds", institution=users["reviewer"].institution,
                                                      sites=["pediatric"]), by=users["coordinator"], ip=IP, now=NOW),
                           ["case.assigned"], "assigned"),
    "reassign": ("in_review", {},
                 lambda db, storage, case, users: reassign_case(db, case, _second_oncologist(db, users),
                                                                by=users["coordinator"], ip=IP, now=NOW),
                 ["case.assigned"], "assigned"),
    "accept offer": ("assigned", {},
                     lambda db, storage, case, users: accept_offer(db, case.active_assignment, by=users["reviewer"],
                                                                   ip=IP, now=NOW),
                     ["assignment.accepted", "case.status_changed"], "in_review"),
    # Not a change of the case's state, but of patient data: audited in the same unit of work.
    "first draft": ("in_review", {},
                    lambda db, storage, case, users: save_draft(db, case, FULL_DRAFT, based_on_version=0,
                                                                by=users["reviewer"], ip=IP, now=NOW),
                    ["opinion.draft_saved"], "in_review"),
    "sign": ("drafted", {},
             lambda db, storage, case, users: sign_and_issue_letter(
                 db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                 by=users["reviewer"], ip=IP, now=NOW),
             ["opinion.signed", "letter.issued"], "letter_delivered"),
    "acknowledge": ("letter_delivered", {},
                    lambda db, storage, case, users: acknowledge_letter(db, case, by=users["referring"], ip=IP, now=NOW),
                    ["letter.acknowledged", "case.status_changed"], "acknowledged"),
    "close": ("acknowledged", {},
              lambda db, storage, case, users: close_case(db, case, by=users["referring"], ip=IP, now=NOW),
              ["case.status_changed"], "closed"),
    "withdraw": ("assigned", {},
                 lambda db, storage, case, users: withdraw_case(db, case, reason="r", by=users["referring"], ip=IP,
                                                                now=NOW),
                 ["case.withdrawn"], "withdrawn"),
}


@pytest.mark.parametrize("name", list(STATE_CHANGES))
def test_every_state_change_writes_its_audit_row_in_the_same_transaction(db, storage, make_case, users, name):
    start, extra, action, audit_actions, after = STATE_CHANGES[name]
    case = _case_at(db, make_case, users, start, extra)
    case_id = case.id
    before = {a: {r.id for r in audit_rows(db, a, case_id)} for a in audit_actions}
    action(db, storage, case, users)
    # Visible in this session before any commit...
    assert case.status == after
    for audit_action in audit_actions:
        [row] = [r for r in audit_rows(db, audit_action, case_id) if r.id not in before[audit_action]]
        assert row.source_ip == IP and row.actor_id is not None and row.at == NOW
    # ...and gone with the state change when the transaction is rolled back: one unit of work.
    db.rollback()
    db.expire_all()
    assert db.get(Case, case_id).status == _status_of(start)
    for audit_action in audit_actions:
        assert {r.id for r in audit_rows(db, audit_action, case_id)} == before[audit_action]


def test_submission_writes_submitted_and_assigned_audit_rows(db, storage, users):
    case, _ = submit_referral(db, storage, referral(), documents=[], scans=[], by=users["referring"], ip=IP, now=NOW,
                              turnaround_days=TURNAROUND)
    assert audit_rows(db, "case.submitted", case.id)[0].actor_id == users["referring"].id
    assert "reviewer@test.example" in audit_rows(db, "case.assigned", case.id)[0].detail


FAILING_CALLS = {
    "wrong password": ("drafted", lambda db, storage, case, users: sign_opinion(
        db, case, password="wrong-password-123", attested=True, by=users["reviewer"], ip=IP, now=NOW)),
    "withdraw a delivered case": ("letter_delivered", lambda db, storage, case, users: withdraw_case(
        db, case, reason="late", by=users["referring"], ip=IP, now=NOW)),
    "reassign to an ineligible reviewer": ("assigned", lambda db, storage, case, users: reassign_case(
        db, case, users["other_reviewer"], by=users["coordinator"], ip=IP, now=NOW)),
    "stale draft": ("drafted", lambda db, storage, case, users: save_draft(
        db, case, FULL_DRAFT, based_on_version=999, by=users["reviewer"], ip=IP, now=NOW)),
}


@pytest.mark.parametrize("name", list(FAILING_CALLS))
def test_a_failed_call_rolled_back_leaves_no_audit_row(db, storage, make_case, users, name):
    start, call = FAILING_CALLS[name]
    case = _case_at(db, make_case, users, start, {})
    case_id = case.id
    before = db.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises((InvalidInput, IllegalTransition, ConcurrentEdit)):
        call(db, storage, case, users)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert db.get(Case, case_id).status == _status_of(start)


def test_wrong_password_is_audited_until_rolled_back(db, make_case, users):
    case = drafted(db, make_case, users)
    with pytest.raises(InvalidInput):
        sign_opinion(db, case, password="wrong-password-123", attested=True, by=users["reviewer"], ip=IP, now=NOW)
    assert len(audit_rows(db, "opinion.sign_refused", case.id)) == 1
    db.rollback()
    assert audit_rows(db, "opinion.sign_refused", case.id) == []


# --------------------------------------------------------------------------- documents


def test_a_non_pdf_document_refuses_the_whole_referral(db, storage, users, tmp_path):
    cases_before, docs_before, blobs_before = count(db, Case), count(db, Document), stored_blobs(storage)
    good = upload(tmp_path, "pathology.pdf", pdf_bytes())
    bad = upload(tmp_path, "letter.docx", b"PK\x03\x04 this is a word file")
    scan = dicom_upload(tmp_path, "CT_small.dcm")
    with pytest.raises(InvalidInput, match="letter.docx"):
        submit_referral(db, storage, referral(), documents=[good, bad], scans=[scan], by=users["referring"], ip=IP,
                        now=NOW, turnaround_days=TURNAROUND)
    db.rollback()
    assert count(db, Case) == cases_before
    assert count(db, Document) == docs_before
    assert count(db, Instance) == 0
    assert stored_blobs(storage) == blobs_before


def test_a_pdf_document_is_stored_content_addressed(db, storage, users, tmp_path):
    data = pdf_bytes()
    case, _ = submit(db, storage, users, documents=[upload(tmp_path, "Path report.pdf", data)])
    [doc] = case.documents
    assert doc.filename == "Path report.pdf" and doc.size == len(data)
    assert storage.read_bytes(doc.sha256) == data


def test_only_referring_physicians_submit(db, storage, users):
    with pytest.raises(InvalidInput):
        submit_referral(db, storage, referral(), documents=[], scans=[], by=users["reviewer"], ip=IP, now=NOW,
                        turnaround_days=TURNAROUND)


def test_invalid_referral_lists_problems_and_creates_nothing(db, storage, users):
    with pytest.raises(InvalidInput) as err:
        submit_referral(db, storage, referral(cancer_site="elbow", patient_mrn="  ", patient_dob=NOW.date() + timedelta(days=1)),
                        documents=[], scans=[], by=users["referring"], ip=IP, now=NOW, turnaround_days=TURNAROUND)
    assert "cancer site" in err.value.message and "Patient mrn" in err.value.message and "future" in err.value.message
    db.rollback()
    assert count(db, Case) == 0


# --------------------------------------------------------------------------- scans


def test_mixed_scan_upload_keeps_the_good_files_and_names_the_bad(db, storage, users, tmp_path):
    ct = testdata("CT_small.dcm").read_bytes()
    scans = [
        dicom_upload(tmp_path, "CT_small.dcm"),
        dicom_upload(tmp_path, "MR_small.dcm"),
        upload(tmp_path, "notes.txt", b"Patient notes, not an image.\n"),
        upload(tmp_path, "broken.dcm", ct[: len(ct) // 2]),
    ]
    case, report = submit(db, storage, users, scans=scans)
    assert report.accepted == 2 and report.duplicates == 0
    reasons = dict(report.rejected)
    assert set(reasons) == {"notes.txt", "broken.dcm"}
    assert "not a DICOM" in reasons["notes.txt"]
    assert "truncated" in reasons["broken.dcm"]
    instances = db.scalars(select(Instance)).all()
    assert sorted(i.original_filename for i in instances) == ["CT_small.dcm", "MR_small.dcm"]
    assert all(storage.exists(i.blob_key) for i in instances)
    [event] = audit_rows(db, "scans.ingested", case.id)
    assert "notes.txt" in event.detail and "broken.dcm" in event.detail


def test_reingesting_the_same_file_is_idempotent(db, storage, users, tmp_path):
    case, report = submit(db, storage, users, scans=[dicom_upload(tmp_path, "CT_small.dcm")])
    assert report.accepted == 1
    instances_before = count(db, Instance)
    again = ingest_scans(db, storage, case, [dicom_upload(tmp_path, "CT_small.dcm", "copy-of-ct.dcm")],
                         by=users["referring"], ip=IP, now=NOW)
    db.commit()
    assert (again.accepted, again.duplicates, again.rejected) == (0, 1, [])
    assert count(db, Instance) == instances_before
    assert count(db, Series) == 1


def _zip(tmp_path, name, entries: dict[str, bytes]) -> UploadedFile:
    path = tmp_path / f"zip-{name}"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry, data in entries.items():
            zf.writestr(entry, data)
    return UploadedFile(name, path)


def test_a_zip_of_dicom_files_is_ingested(db, storage, users, tmp_path):
    study = _zip(tmp_path, "study.zip", {
        "study/CT/IM0001.dcm": testdata("CT_small.dcm").read_bytes(),
        "study/MR/IM0001.dcm": testdata("MR_small.dcm").read_bytes(),
        "study/README.txt": b"exported by PACS",
    })
    case, report = submit(db, storage, users, scans=[study])
    assert report.accepted == 2
    assert [name for name, _ in report.rejected] == ["study.zip: study/README.txt"]
    assert sorted(s.modality for s in db.scalars(select(Series))) == ["CT", "MR"]


def test_a_zip_with_a_path_escaping_entry_is_rejected(db, storage, users, tmp_path):
    evil = _zip(tmp_path, "evil.zip", {
        "IM0001.dcm": testdata("CT_small.dcm").read_bytes(),
        "../x.dcm": testdata("MR_small.dcm").read_bytes(),
    })
    case, report = submit(db, storage, users, scans=[evil])
    assert report.accepted == 0
    [(name, reason)] = report.rejected
    assert name == "evil.zip" and "escapes" in reason
    assert count(db, Instance) == 0
    assert not list(storage.root.rglob("x.dcm")) and not list(tmp_path.parent.rglob("x.dcm"))
    # The referral itself is still created and routed.
    assert case.status == "assigned"
