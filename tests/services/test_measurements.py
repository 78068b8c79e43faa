"""The reviewer's measurements: computed by the server from the original pixels, kept with the reviewer's own
review, changed only by its reviewer and only until it is signed; frozen and hashed at signing."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from review_portal.assignment.models import Review
from review_portal.audit.models import AuditEvent
from review_portal.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from review_portal.imaging import services as imaging
from review_portal.opinions import measurements as service
from review_portal.opinions.services import OpinionDraft, opinion_for_case, save_draft, signed_content_hash
from review_portal.uploads import UploadedFile
from review_portal.workflow.assignments import accept_offer, add_review
from review_portal.workflow.signing import sign_and_issue_letter
from review_portal.deadlines import SlaPolicy
from tests.conftest import INSTITUTION, NOW, PASSWORD, TURNAROUND, confirm_test_scans
from tests.phantom import SQUARE, write_phantom


def phantom_case(db, storage, make_case, users, tmp_path, status="in_review"):
    case = make_case(status)
    path = write_phantom(tmp_path / "phantom" / "p.dcm")
    imaging.ingest_scans(db, storage, case, [UploadedFile("p.dcm", path)], by=users["referring"], ip="", now=NOW)
    confirm_test_scans(db, case, users["coordinator"])  # the phantom is built from a pydicom test file
    instance = imaging.ordered_instances(imaging.series_of_case(db, case.id)[0])[0]
    return case, instance


POLICY = SlaPolicy(TURNAROUND)
SIDE = [[SQUARE["x0"], SQUARE["y0"]], [SQUARE["x0"] + SQUARE["side"], SQUARE["y0"]]]


def _create(db, storage, case, instance, by, kind="length", points=SIDE, label="Target lesion 1", minutes=30):
    return service.create_measurement(db, storage, case, sop_instance_uid=instance.sop_instance_uid, frame=0, kind=kind,
                                      points=points, label=label, by=by, ip="", now=NOW + timedelta(minutes=minutes))


def test_reviewer_measures_and_the_server_computes_the_value(db, storage, make_case, users, tmp_path):
    case, instance = phantom_case(db, storage, make_case, users, tmp_path)
    m = _create(db, storage, case, instance, case.reviewer)
    assert m.review_id == service.lead_review(case).id and m.author_id == case.reviewer.id
    assert (m.instance_id, m.sop_instance_uid, m.frame) == (instance.id, instance.sop_instance_uid, 0)
    assert m.values["length"] == pytest.approx(21.0) and m.values["calibrated"] is True
    rows = service.measurements_for_page(db, case, case.reviewer)
    assert rows == [{"id": m.id, "label": "Target lesion 1", "image": "CT Phantom, series 1, image 1", "kind": "length",
                     "kind_label": "Length", "value": "21.0 mm", "calibrated": True,
                     "sop_instance_uid": instance.sop_instance_uid, "frame": 0}]
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)).all()
    assert "measurement.created" in actions

    moved = service.update_measurement(db, storage, case, m.id, points=[SIDE[0], [SQUARE["x0"], SQUARE["y0"] + 10]],
                                       label="  Node  2 ", by=case.reviewer, ip="", now=NOW + timedelta(minutes=40))
    assert moved.values["length"] == pytest.approx(7.0) and moved.label == "Node 2"
    service.delete_measurement(db, case, m.id, by=case.reviewer, ip="", now=NOW + timedelta(minutes=50))
    assert service.measurements_of_case(db, case.id) == []


def test_only_a_reviewer_holding_a_review_measures_and_only_the_author_changes(db, storage, make_case, users, tmp_path):
    case, instance = phantom_case(db, storage, make_case, users, tmp_path)
    for who in ("referring", "other_reviewer", "coordinator", "radiologist"):
        with pytest.raises(PermissionDenied):
            _create(db, storage, case, instance, users[who])
    m = _create(db, storage, case, instance, case.reviewer)
    with pytest.raises(PermissionDenied):
        service.delete_measurement(db, case, m.id, by=users["other_reviewer"], ip="", now=NOW)
    with pytest.raises(NotFound):
        service.delete_measurement(db, case, m.id + 999, by=case.reviewer, ip="", now=NOW)


@pytest.mark.parametrize("kind, points, frame, uid, problem", [
    ("length", [[0, 0], [500, 0]], 0, None, InvalidInput),
    ("length", [[0, 0]], 0, None, InvalidInput),
    ("circle", [[0, 0], [1, 1]], 0, None, InvalidInput),
    ("length", [[0, 0], [1, 1]], 3, None, InvalidInput),
    ("length", [[0, 0], [1, 1]], "0", None, InvalidInput),
    ("length", [[0, 0], [1, 1]], 0, "1.2.3.4", NotFound),
])
def test_bad_measurements_are_refused_and_nothing_is_kept(db, storage, make_case, users, tmp_path, kind, points, frame,
                                                          uid, problem):
    case, instance = phantom_case(db, storage, make_case, users, tmp_path)
    with pytest.raises(problem):
        service.create_measurement(db, storage, case, sop_instance_uid=uid or instance.sop_instance_uid, frame=frame,
                                   kind=kind, points=points, label="", by=case.reviewer, ip="", now=NOW)
    assert service.measurements_of_case(db, case.id) == []


def test_a_label_longer_than_allowed_is_refused(db, storage, make_case, users, tmp_path):
    case, instance = phantom_case(db, storage, make_case, users, tmp_path)
    with pytest.raises(InvalidInput):
        _create(db, storage, case, instance, case.reviewer, label="x" * 301)


def test_signing_recomputes_freezes_and_hashes_the_measurements(db, storage, make_case, users, tmp_path):
    case, instance = phantom_case(db, storage, make_case, users, tmp_path)
    reviewer = case.reviewer
    m = _create(db, storage, case, instance, reviewer)
    m.values = {**m.values, "length": 99.0}  # whatever was stored, the signature recomputes from the pixels
    save_draft(db, case, OpinionDraft("refined", "modify", "Stage IB.", "Lobectomy.", "Second focus."),
               based_on_version=None, by=reviewer, ip="", now=NOW + timedelta(hours=1))
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION, by=reviewer,
                          ip="", now=NOW + timedelta(hours=2))
    db.refresh(m)
    assert m.is_frozen and m.values["length"] == pytest.approx(21.0)
    opinion = opinion_for_case(db, case.id)
    frozen = service.signed_measurements([m])
    assert opinion.content_sha256 == signed_content_hash(opinion, case, frozen)
    assert opinion.content_sha256 != signed_content_hash(opinion, case)  # the measurements are covered

    with pytest.raises(IllegalTransition):
        _create(db, storage, case, instance, reviewer, minutes=200)
    with pytest.raises(IllegalTransition):
        service.update_measurement(db, storage, case, m.id, label="later", by=reviewer, ip="", now=NOW + timedelta(hours=3))
    with pytest.raises(IllegalTransition):
        service.delete_measurement(db, case, m.id, by=reviewer, ip="", now=NOW + timedelta(hours=3))


def test_a_contributing_reviewer_measures_into_their_own_review(db, storage, make_case, users, tmp_path):
    case, instance = phantom_case(db, storage, make_case, users, tmp_path)
    lead = service.lead_review(case)
    review = add_review(db, case, "radiology_read", policy=POLICY, by=users["coordinator"], ip="",
                        now=NOW + timedelta(minutes=5))
    assignment = review.active_assignment
    accept_offer(db, assignment, by=assignment.reviewer, ip="", now=NOW + timedelta(minutes=6))
    m = _create(db, storage, case, instance, assignment.reviewer)
    assert m.review_id == review.id != lead.id
    assert service.measurements_for_letter(db, case) == []  # the letter's table is the lead review's
    review.status = "completed"
    db.flush()
    with pytest.raises(IllegalTransition):
        _create(db, storage, case, instance, assignment.reviewer, minutes=60)
    assert db.get(Review, review.id).is_completed
