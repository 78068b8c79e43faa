"""Is this the same patient? Ingest flags real files edited with pydicom; the referrer or a coordinator resolves;
a wrong study is removed and purged as a privacy incident; signing waits; the letter states each study's identity."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from pypdf import PdfReader
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.audit.services import record_image_view
from review_portal.errors import IllegalTransition, InvalidInput, PermissionDenied
from review_portal.imaging import identity_services
from review_portal.imaging.identity_services import (
    confirm_same_patient,
    mismatches_of_case,
    open_mismatches,
    require_identity_resolved,
)
from review_portal.imaging.models import (
    IdentityMismatch,
    Instance,
    KeyImage,
    Series,
    Study,
)
from review_portal.imaging.services import ingest_scans, mark_key_image, series_of_case
from review_portal.letters.services import letters_for_case
from review_portal.models import BLOB_REFERENCES, blob_is_referenced
from review_portal.notifications.models import Notification
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.uploads import UploadedFile
from review_portal.workflow.identity import (
    image_views_of_removed_study,
    remove_wrong_study,
)
from review_portal.workflow.signing import sign_and_issue_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD, testdata

IP = "127.0.0.1"
# The referral of conftest.referral(): Test Patient, born 1960-01-02, female, MRN-1.
SAME = {"PatientName": "PATIENT^TEST", "PatientID": "MRN-1", "PatientBirthDate": "19600102", "PatientSex": "F"}
OTHER = {"PatientName": "ROE^RICHARD", "PatientID": "H-99", "PatientBirthDate": "19991231", "PatientSex": "M"}


def edited(tmp_path, name: str = "CT_small.dcm", *, new_study: bool = True, flip: bool = False, **values) -> UploadedFile:
    """pydicom's file with its patient (and, by default, its study) changed: a real file as an outside site sends it.
    `flip` turns the image upside down, so its pixels (and thumbnail) are its own."""
    ds = dcmread(testdata(name))
    if flip:
        ds.PixelData = ds.pixel_array[::-1].tobytes()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    if new_study:
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / f"{generate_uid()}.dcm"
    ds.save_as(path)
    return UploadedFile(path.name, path)


def send(db, storage, case, users, *files):
    report = ingest_scans(db, storage, case, list(files), by=users["referring"], ip=IP, now=NOW + timedelta(minutes=5))
    db.commit()
    return report


def draft(db, case):
    save_draft(db, case, OpinionDraft("refined", "modify", "Refined.", "Modified.", "Because.", ""),
               based_on_version=None, by=case.reviewer, ip=IP, now=NOW + timedelta(hours=1))


def sign(db, storage, case):
    return sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                                 by=case.reviewer, ip=IP, now=NOW + timedelta(hours=2))


def letter_text(storage, db, case) -> str:
    letter = letters_for_case(db, case.id)[-1]
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(storage.read_verified(letter.blob_key))).pages)


def test_a_study_of_this_patient_is_not_flagged_and_the_letter_says_it_was_checked(db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    send(db, storage, case, users, edited(tmp_path, **SAME, StudyDescription="CT chest"))
    study = db.scalar(select(Study).where(Study.case_id == case.id))
    assert (study.patient_name, study.patient_id, study.patient_birth_date, study.patient_sex) == (
        "PATIENT^TEST", "MRN-1", "19600102", "F")
    assert mismatches_of_case(db, case.id) == []
    require_identity_resolved(db, case)  # nothing open: no exception
    draft(db, case)
    sign(db, storage, case)
    db.commit()
    text = letter_text(storage, db, case)
    assert "Patient in the file: PATIENT, TEST, ID MRN-1, born 1960-01-02, sex female" in text
    assert "Identity checked against the referral" in text


def test_every_differing_field_is_recorded_with_both_values_and_audited(db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    sent = edited(tmp_path, **OTHER)
    send(db, storage, case, users, sent)
    rows = mismatches_of_case(db, case.id)
    assert [(m.field, m.referral_value, m.dicom_value, m.status) for m in rows] == [
        ("name", "Test Patient", "ROE, RICHARD", "open"),
        ("id", "MRN-1", "H-99", "open"),
        ("birth_date", "1960-01-02", "1999-12-31", "open"),
        ("sex", "female", "male", "open"),
    ]
    flagged = db.scalars(select(AuditEvent).where(AuditEvent.action == "identity.mismatch_flagged")).all()
    assert len(flagged) == 4 and all(e.flagged and e.case_id == case.id for e in flagged)
    # Sending the same file again adds no second record.
    send(db, storage, case, users, UploadedFile("again.dcm", sent.path))
    assert len(mismatches_of_case(db, case.id)) == 4


@pytest.mark.parametrize("keyword,value,field", [
    ("PatientName", "Patient^Tést", None), ("PatientName", "TEST PATIENT", None), ("PatientName", "PATIENT^TESS", "name"),
    ("PatientID", "mrn 1", None), ("PatientID", "MRN-2", "id"),
    ("PatientBirthDate", "1960.01.02", None), ("PatientBirthDate", "19600103", "birth_date"),
    ("PatientSex", "", None), ("PatientSex", "O", "sex"),
])
def test_one_field_at_a_time_through_a_real_ingest(db, storage, make_case, users, tmp_path, keyword, value, field):
    case = make_case("in_review")
    send(db, storage, case, users, edited(tmp_path, **(SAME | {keyword: value})))
    assert [m.field for m in mismatches_of_case(db, case.id)] == ([field] if field else [])


def test_an_accepted_outside_issuer_is_not_flagged(db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    db.info[identity_services.ISSUERS_INFO_KEY] = ("ST ELSEWHERE IMAGING",)
    send(db, storage, case, users, edited(tmp_path, **(SAME | {"PatientID": "SE-0042"}), IssuerOfPatientID="St Elsewhere Imaging"))
    send(db, storage, case, users, edited(tmp_path, **(SAME | {"PatientID": "XX-1"}), IssuerOfPatientID="Unknown Site"))
    assert [(m.field, m.dicom_value) for m in mismatches_of_case(db, case.id)] == [("id", "XX-1 (issuer Unknown Site)")]


def test_two_patients_in_one_referral_are_flagged(db, storage, make_case, users, tmp_path):
    # The referral does not say the sex: each study alone matches it, but they are not the same person.
    case = make_case("in_review", patient_sex="unknown")
    send(db, storage, case, users, edited(tmp_path, **(SAME | {"PatientSex": "F"})),
         edited(tmp_path, "MR_small.dcm", **(SAME | {"PatientSex": "M"})))
    [row] = mismatches_of_case(db, case.id)
    assert row.field == "several_patients" and "sex female" in row.referral_value and "sex male" in row.dicom_value


def test_pydicoms_own_files_are_flagged_as_the_issue_describes(db, storage, make_case, users):
    case = make_case("in_review", scans=["CT_small.dcm"], confirm_identity=False,
                     patient_name="Testy McUX", patient_mrn="UX-55501")
    fields = {m.field: m for m in open_mismatches(db, case.id)}
    assert fields["name"].dicom_value == "CompressedSamples, CT1" and fields["name"].referral_value == "Testy McUX"
    assert fields["id"].dicom_value == "1CT1" and fields["id"].referral_value == "UX-55501"


def test_signing_waits_until_the_referrer_confirms_the_same_patient(db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    send(db, storage, case, users, edited(tmp_path, **(SAME | {"PatientID": "OUT-7"})))
    draft(db, case)
    db.commit()
    with pytest.raises(IllegalTransition, match="patient identity is unresolved.*'OUT-7' in the file and 'MRN-1'"):
        sign(db, storage, case)
    db.rollback()
    [row] = open_mismatches(db, case.id)
    with pytest.raises(PermissionDenied):
        confirm_same_patient(db, case, row.study_id, reason="x", by=case.reviewer, ip=IP, now=NOW)
    with pytest.raises(PermissionDenied):
        confirm_same_patient(db, case, row.study_id, reason="x", by=users["other_referring"], ip=IP, now=NOW)
    with pytest.raises(InvalidInput, match="reason"):
        confirm_same_patient(db, case, row.study_id, reason="  ", by=users["referring"], ip=IP, now=NOW)
    confirm_same_patient(db, case, row.study_id, reason="Outside MRN of St Elsewhere", by=users["referring"], ip=IP,
                         now=NOW + timedelta(minutes=30))
    db.commit()
    assert (row.status, row.reason, row.resolved_by_id) == ("same_patient", "Outside MRN of St Elsewhere", users["referring"].id)
    with pytest.raises(IllegalTransition, match="already resolved"):
        confirm_same_patient(db, case, row.study_id, reason="again", by=users["coordinator"], ip=IP, now=NOW)
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "identity.confirmed"))
    assert event.reason == "Outside MRN of St Elsewhere" and event.actor_id == users["referring"].id
    assert sign(db, storage, case) is not None
    db.commit()
    assert "Confirmed same patient: Outside MRN of St Elsewhere" in letter_text(storage, db, case)


def test_a_wrong_study_is_removed_purged_and_reported_as_a_privacy_incident(db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    other_case = make_case("in_review", scans=["MR_small.dcm"])  # the same MR bytes, legitimately, in another case
    send(db, storage, case, users, edited(tmp_path, **SAME, StudyDescription="CT of this patient"),
         edited(tmp_path, **OTHER, StudyDescription="CT of someone else", flip=True),
         UploadedFile("MR_small.dcm", testdata("MR_small.dcm")))
    wrong = db.scalar(select(Study).where(Study.case_id == case.id, Study.description == "CT of someone else"))
    [series] = [s for s in series_of_case(db, case.id) if s.study_id == wrong.id]
    mark_key_image(db, storage, case, series, slice_index=0, center=40, width=400, caption="nodule", by=case.reviewer,
                   ip=IP, now=NOW + timedelta(minutes=20))
    record_image_view(db, case=case, series_id=series.id, by=case.reviewer, ip="10.0.0.7", now=NOW + timedelta(minutes=21),
                      session_key="s1")
    db.commit()
    keys = {series.thumbnail_key, *(i.blob_key for i in series.instances), db.scalar(select(KeyImage.png_key))}
    mr = db.scalar(select(Study).where(Study.case_id == case.id, Study.description != "CT of this patient",
                                       Study.id != wrong.id))
    assert all(storage.exists(k) for k in keys) and None not in keys
    mr_key = db.scalar(select(Instance.blob_key).join(Series).where(Series.study_id == mr.id))
    series_id, wrong_id = series.id, wrong.id

    remove_wrong_study(db, storage, case, wrong_id, reason="Another patient's CT, sent by mistake", by=users["coordinator"],
                       ip=IP, now=NOW + timedelta(hours=1), references=BLOB_REFERENCES, referenced=blob_is_referenced)
    db.commit()
    db.expire_all()
    # Rows and files are gone, the other studies and the MR (shared with another case) stay.
    assert db.get(Study, wrong_id) is None and db.get(Series, series_id) is None
    assert db.scalar(select(KeyImage).where(KeyImage.case_id == case.id)) is None
    assert [k for k in keys if storage.exists(k)] == []  # original, thumbnail and key image
    assert storage.exists(mr_key) and len(series_of_case(db, other_case.id)) == 1
    assert {s.description for s in db.scalars(select(Study).where(Study.case_id == case.id))} == {"CT of this patient", mr.description}
    # The upload no longer carries the wrong file, so nothing refers to it any more.
    assert not any(blob_is_referenced(db, k) for k in keys)
    # The record stays, resolved, with what was removed.
    rows = db.scalars(select(IdentityMismatch).where(IdentityMismatch.study_id == wrong_id)).all()
    assert {r.status for r in rows} == {"wrong_study"} and rows[0].removed["series_ids"] == [series_id]
    # The administrators are told; the audit shows the incident and who saw the images.
    [note] = db.scalars(select(Notification).where(Notification.kind == "privacy_incident")).all()
    assert note.user_id == users["admin"].id and note.link == f"/cases/{case.id}/identity/{wrong_id}/views"
    assert "Roe" not in note.text and case.reference in note.text
    incident = db.scalar(select(AuditEvent).where(AuditEvent.action == "privacy.incident"))
    assert incident.flagged and incident.reason == "Another patient's CT, sent by mistake"
    views = image_views_of_removed_study(db, case, wrong_id)
    assert [(e.actor_id, e.source_ip, e.object_id) for e in views] == [(case.reviewer.id, "10.0.0.7", str(series_id))]
    # Once the MR (pydicom's own patient) is confirmed, nothing is open: the opinion can be signed, and the letter
    # does not list the removed study.
    confirm_same_patient(db, case, mr.id, reason="pydicom test file", by=users["referring"], ip=IP, now=NOW)
    require_identity_resolved(db, case)
    draft(db, case)
    sign(db, storage, case)
    db.commit()
    text = letter_text(storage, db, case)
    assert "CT of this patient" in text and "someone else" not in text and "ROE" not in text


def test_a_failed_removal_deletes_no_file(db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    send(db, storage, case, users, edited(tmp_path, **OTHER))
    study = db.scalar(select(Study).where(Study.case_id == case.id))
    key = db.scalar(select(Instance.blob_key))
    remove_wrong_study(db, storage, case, study.id, reason="wrong", by=users["coordinator"], ip=IP, now=NOW,
                       references=BLOB_REFERENCES, referenced=blob_is_referenced)
    db.rollback()  # the request failed after the removal: the rows come back, so the file must stay
    db.commit()
    assert storage.exists(key) and db.scalar(select(Study).where(Study.case_id == case.id)) is not None
    assert [m.status for m in open_mismatches(db, case.id)] == ["open"] * 4
