"""Is this the same patient? Each field and each normalisation rule of imaging.identity, and the identity that
inspection reads from real DICOM files edited with pydicom. No app, no database."""
from __future__ import annotations

from datetime import date

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from review_portal.errors import IllegalTransition
from review_portal.imaging import identity
from review_portal.imaging.identity import (
    PatientIdentity,
    compare,
    compare_studies,
    referral_identity,
)
from review_portal.imaging.identity_lifecycle import (
    TRANSITIONS,
    MismatchStatus,
    can_transition,
    set_status,
)
from review_portal.imaging.inspection import inspect_dicom
from tests.conftest import testdata

REFERRAL = referral_identity(name="Jane Doe", mrn="MRN-1", birth_date=date(1960, 1, 2), sex="female")


def study(name="DOE^JANE", pid="MRN-1", dob="19600102", sex="F", issuer="", other_ids=()):
    return PatientIdentity(name=name, id=pid, birth_date=dob, sex=sex, issuer=issuer, other_ids=other_ids)


def fields(result) -> list[str]:
    return [d.field for d in result.differences]


# -- names ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dicom_name", [
    "DOE^JANE",            # family^given, the referral says given family
    "Doe^Jane",            # case
    "doe^jane^^^",         # empty trailing components
    "DOE^JANE^MARIE",      # a middle name on one side only
    "DOE^JANE^^MRS^PHD",   # prefix and suffix are not compared
    "DOE^JANE=ドウ^ジェーン",  # ideographic group after '=' ignored
    "  DOE ^ JANE  ",      # stray spaces
])
def test_names_that_are_the_same_patient(dicom_name):
    assert identity.names_match("Jane Doe", dicom_name)
    assert fields(compare(REFERRAL, study(name=dicom_name))) == []


def test_accents_are_dropped_both_ways():
    assert identity.names_match("José Müller", "MULLER^JOSE")
    assert identity.names_match("Jose Muller", "Müller^José")
    assert identity.names_match("Zoë Ångström", "ANGSTROM^ZOE")


def test_punctuation_and_whitespace():
    assert identity.names_match("Mary-Ann O'Brien", "O'BRIEN^MARY ANN")
    assert identity.names_match("O'Brien, Mary-Ann", "OBRIEN^MARY-ANN")
    assert identity.names_match("Dr. J. R. Smith", "SMITH^J.R.^^DR") is False  # "dr" is a word of free text
    assert identity.names_match("J.R. Smith", "SMITH^JR")


def test_order_of_given_and_family_names():
    assert identity.names_match("Doe, Jane", "DOE^JANE")
    assert identity.names_match("Jane Doe", "DOE^JANE")
    assert identity.names_match("Doe Jane", "DOE^JANE")


@pytest.mark.parametrize("dicom_name", ["CompressedSamples^CT1", "DOE^JOHN", "DOE", "ROE^JANE", "DOE^JANET"])
def test_names_of_another_patient(dicom_name):
    result = compare(REFERRAL, study(name=dicom_name))
    assert fields(result) == ["name"]
    assert result.differences[0].referral_value == "Jane Doe"
    assert result.differences[0].dicom_value == identity.format_dicom_name(dicom_name)


def test_the_issue_example_is_flagged_on_name_and_id():
    referral = referral_identity(name="Testy McUX", mrn="UX-55501", birth_date=date(1970, 5, 5), sex="male")
    result = compare(referral, study(name="CompressedSamples^CT1", pid="1CT1", dob="", sex=""))
    assert fields(result) == ["name", "id"]
    assert result.differences[0].dicom_value == "CompressedSamples, CT1"
    assert result.differences[1].referral_value == "UX-55501" and result.differences[1].dicom_value == "1CT1"


def test_an_empty_name_in_the_file_is_nothing_to_disagree_with():
    assert fields(compare(REFERRAL, study(name=""))) == []


def test_format_dicom_name():
    assert identity.format_dicom_name("DOE^JANE^M^DR^JR") == "DOE, JANE M"
    assert identity.format_dicom_name("DOE") == "DOE"
    assert identity.format_dicom_name("") == ""


# -- ID and issuer ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("pid", ["MRN-1", "mrn-1", "MRN1", " MRN 1 ", "mrn.1", "MRN/1"])
def test_ids_that_agree(pid):
    assert fields(compare(REFERRAL, study(pid=pid))) == []


def test_another_id_is_flagged_with_its_issuer():
    result = compare(REFERRAL, study(pid="H-99", issuer="OTHER HOSPITAL"))
    assert fields(result) == ["id"]
    assert result.differences[0].dicom_value == "H-99 (issuer OTHER HOSPITAL)"


def test_an_accepted_outside_issuer_is_an_outside_id_not_a_mismatch():
    result = compare(REFERRAL, study(pid="OUT-77", issuer="St Elsewhere Imaging"),
                     accepted_issuers=("ST ELSEWHERE IMAGING", "Another Site"))
    assert fields(result) == [] and result.outside_id == "OUT-77 (St Elsewhere Imaging)"
    # Only the configured issuers: the same ID from an unlisted issuer is a mismatch.
    assert fields(compare(REFERRAL, study(pid="OUT-77", issuer="Unlisted"), accepted_issuers=("Another Site",))) == ["id"]
    # No issuer in the file: the list cannot apply.
    assert fields(compare(REFERRAL, study(pid="OUT-77", issuer=""), accepted_issuers=("",))) == ["id"]


def test_the_mrn_among_other_patient_ids_agrees():
    assert fields(compare(REFERRAL, study(pid="OUT-77", other_ids=(("MRN-1", "OUR HOSPITAL"),)))) == []


def test_an_empty_id_in_the_file_is_nothing_to_disagree_with():
    assert fields(compare(REFERRAL, study(pid=""))) == []


# -- birth date -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dob", ["19600102", "1960.01.02", "19600102 ", ""])
def test_birth_dates_that_agree(dob):
    assert fields(compare(REFERRAL, study(dob=dob))) == []


@pytest.mark.parametrize("dob,shown", [("19600201", "1960-02-01"), ("19610102", "1961-01-02"), ("notadate", "notadate")])
def test_birth_dates_that_differ(dob, shown):
    result = compare(REFERRAL, study(dob=dob))
    assert fields(result) == ["birth_date"]
    assert result.differences[0].referral_value == "1960-01-02" and result.differences[0].dicom_value == shown


# -- sex --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("referral_sex,dicom_sex,same", [
    ("female", "F", True), ("male", "M", True), ("other", "O", True), ("female", "f", True),
    ("female", "M", False), ("male", "F", False), ("other", "F", False), ("male", "O", False),
    ("unknown", "M", True), ("female", "", True), ("female", "X", True),
])
def test_sex_codes_against_the_referrals_words(referral_sex, dicom_sex, same):
    referral = referral_identity(name="Jane Doe", mrn="MRN-1", birth_date=date(1960, 1, 2), sex=referral_sex)
    result = compare(referral, study(sex=dicom_sex))
    assert fields(result) == ([] if same else ["sex"])
    if not same:
        assert result.differences[0].referral_value == referral_sex
        assert result.differences[0].dicom_value == {"M": "male", "F": "female", "O": "other"}[dicom_sex]


def test_every_field_at_once():
    result = compare(REFERRAL, study(name="ROE^RICHARD", pid="X-1", dob="19990909", sex="M"))
    assert fields(result) == ["name", "id", "birth_date", "sex"]
    assert [d.label for d in result.differences] == ["Patient name", "Patient ID / MRN", "Birth date", "Sex"]


# -- several patients in one referral ---------------------------------------------------------------------

def test_two_studies_of_different_patients_are_a_pair():
    a = study(name="DOE^JANE", sex="F")
    b = study(name="DOE^JANE", sex="M")
    c = study(name="DOE^JANE^MARIE", sex="F")
    assert compare_studies([("a", a), ("b", b), ("c", c)]) == [("a", "b"), ("b", "c")]


def test_studies_of_one_patient_with_outside_ids_are_not_a_pair():
    a = study(pid="OUT-1", issuer="SITE A")
    b = study(pid="OUT-2", issuer="SITE B")
    assert compare_studies([(1, a), (2, b)], accepted_issuers=("SITE A", "SITE B")) == []
    assert compare_studies([(1, a), (2, b)]) == [(1, 2)]


# -- the resolution's transition table --------------------------------------------------------------------

def test_open_moves_to_either_decision_and_both_are_final():
    assert TRANSITIONS[MismatchStatus.OPEN] == {MismatchStatus.SAME_PATIENT, MismatchStatus.WRONG_STUDY}
    for end in (MismatchStatus.SAME_PATIENT, MismatchStatus.WRONG_STUDY):
        assert not TRANSITIONS[end]
        assert not can_transition(end, MismatchStatus.OPEN)

    class Row:
        status = "same_patient"

    with pytest.raises(IllegalTransition, match="already resolved"):
        set_status(Row(), MismatchStatus.WRONG_STUDY)


# -- what inspection reads from real files, edited with pydicom -------------------------------------------

def _edited(tmp_path, name="CT_small.dcm", **values):
    ds = dcmread(testdata(name))
    for keyword, value in values.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = tmp_path / f"edited-{name}"
    ds.save_as(path)
    return path


def test_inspection_reads_the_patient_of_pydicoms_ct_small(tmp_path):
    info = inspect_dicom(testdata("CT_small.dcm"))
    assert info.patient_name == "CompressedSamples^CT1" and info.patient_id == "1CT1"


def test_inspection_reads_every_identity_field_of_an_edited_file(tmp_path):
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = "MRN-1", "OUR HOSPITAL"
    path = _edited(tmp_path, PatientName="Müller^José^^Dr", PatientID="OUT-7", IssuerOfPatientID="St Elsewhere",
                   PatientBirthDate="19600102", PatientSex="M", OtherPatientIDsSequence=Sequence([other]))
    info = inspect_dicom(path)
    assert (info.patient_name, info.patient_id, info.patient_id_issuer, info.patient_birth_date, info.patient_sex) == (
        "Müller^José^^Dr", "OUT-7", "St Elsewhere", "19600102", "M")
    assert info.other_patient_ids == "MRN-1\tOUR HOSPITAL"


def test_inspection_of_a_file_without_patient_module(tmp_path):
    path = _edited(tmp_path, PatientName=None, PatientID=None, PatientBirthDate=None, PatientSex=None)
    info = inspect_dicom(path)
    assert (info.patient_name, info.patient_id, info.patient_birth_date, info.patient_sex) == ("", "", "", "")
