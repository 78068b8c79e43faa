"""DICOM de-identification by the PS3.15 Annex E Basic Application Level Confidentiality Profile,
with the Retain Longitudinal Temporal Information with Modified Dates Option.

pydicom has no built-in anonymiser, so the profile's action table is implemented here for the
attributes it names (Table E.1-1, the identifying ones found in clinical CT/MR/PT/CR/US headers),
plus the profile's blanket rules so nothing unlisted slips through:
  * private attributes, curves and overlays are removed;
  * every UID that is not a registered DICOM UID (SOP classes, transfer syntaxes...) is replaced,
    consistently within one export (same old UID -> same new UID, so studies and series still link);
  * every date (DA, and the date part of DT) is shifted by the same number of days within one export;
  * any person name (PN) not in the table is removed;
  * instances whose pixels carry burned-in annotation (BurnedInAnnotation = YES, or unknown for the
    modalities that usually do) are left out, since cleaning pixel data is not implemented.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

# Actions of Table E.1-1 (basic profile column): X remove, Z empty/dummy, D dummy, U new UID (handled by VR),
# K keep. Dates are shifted (modified dates option) instead of their X/Z/D action.
ACTIONS: dict[str, str] = {
    # Patient
    "PatientName": "D", "PatientID": "D", "IssuerOfPatientID": "X", "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X", "OtherPatientNames": "X", "PatientBirthName": "X", "PatientBirthTime": "X",
    "PatientMotherBirthName": "X", "MedicalRecordLocator": "X", "PatientAddress": "X", "PatientTelephoneNumbers": "X",
    "PatientTelecomInformation": "X", "EthnicGroup": "X", "Occupation": "X", "MilitaryRank": "X", "BranchOfService": "X",
    "CountryOfResidence": "X", "RegionOfResidence": "X", "PatientInsurancePlanCodeSequence": "X",
    "PatientReligiousPreference": "X", "AdditionalPatientHistory": "X", "PatientComments": "X", "PatientState": "X",
    "PregnancyStatus": "X", "MedicalAlerts": "X", "Allergies": "X", "SpecialNeeds": "X", "ResponsiblePerson": "X",
    "ResponsibleOrganization": "X", "PatientAge": "X", "PatientSize": "X", "PatientWeight": "X",
    "PatientSexNeutered": "X", "SmokingStatus": "X", "LastMenstrualDate": "X",
    # Study / visit / request
    "AccessionNumber": "Z", "StudyID": "Z", "ReferringPhysicianName": "Z", "ReferringPhysicianAddress": "X",
    "ReferringPhysicianTelephoneNumbers": "X", "ReferringPhysicianIdentificationSequence": "X",
    "ConsultingPhysicianName": "X", "PhysiciansOfRecord": "X", "PhysiciansOfRecordIdentificationSequence": "X",
    "PerformingPhysicianName": "X", "PerformingPhysicianIdentificationSequence": "X", "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X", "OperatorsName": "X", "OperatorIdentificationSequence": "X",
    "RequestingPhysician": "X", "RequestingService": "X", "RequestAttributesSequence": "X", "AdmissionID": "X",
    "IssuerOfAdmissionID": "X", "AdmittingDiagnosesDescription": "X", "AdmittingDiagnosesCodeSequence": "X",
    "ReasonForStudy": "X", "RequestedProcedureDescription": "X", "RequestedProcedureID": "X",
    "PerformedProcedureStepID": "X", "PerformedProcedureStepDescription": "X", "ScheduledProcedureStepID": "X",
    "StudyComments": "X", "InterpretationAuthor": "X", "ImageComments": "X", "FrameComments": "X",
    "ReferencedPatientSequence": "X", "ReferencedStudySequence": "X", "ReferencedPatientAliasSequence": "X",
    "CurrentPatientLocation": "X", "PatientInstitutionResidence": "X", "ServiceEpisodeID": "X",
    "ServiceEpisodeDescription": "X", "VisitComments": "X", "OrderEnteredBy": "X", "OrderEntererLocation": "X",
    "OrderCallbackPhoneNumber": "X", "PlacerOrderNumberImagingServiceRequest": "Z",
    "FillerOrderNumberImagingServiceRequest": "Z", "ContentCreatorName": "Z", "VerifyingObserverName": "D",
    "PersonName": "D",
    # Equipment / site
    "InstitutionName": "X", "InstitutionAddress": "X", "InstitutionalDepartmentName": "X",
    "InstitutionCodeSequence": "X", "StationName": "X", "DeviceSerialNumber": "X", "DeviceUID": "U",
    "DetectorID": "X", "PlateID": "X", "GantryID": "X", "CassetteID": "X", "GeneratorID": "X",
    "SourceApplicationEntityTitle": "X", "ModifiedAttributesSequence": "X", "OriginalAttributesSequence": "X",
    "DigitalSignaturesSequence": "X", "MACParametersSequence": "X", "DataSetTrailingPadding": "X",
    "ProtocolName": "X", "SeriesDescription": "X", "StudyDescription": "X", "AcquisitionComments": "X",
    "DerivationDescription": "X", "TextString": "X", "TextComments": "X", "TopicTitle": "X", "TopicSubject": "X",
    "TopicAuthor": "X", "TopicKeywords": "X", "Arbitrary": "X", "IconImageSequence": "X",
    "TimezoneOffsetFromUTC": "X", "InstanceCreatorUID": "U",
}
# Modalities where text is commonly burned into the pixels when the header does not say otherwise.
BURNED_IN_LIKELY = frozenset({"US", "SC", "OT", "XC", "ES", "GM", "SM", "DOC"})
DEID_METHOD = "PS3.15 E.1 Basic Profile; Modified Dates Option"  # LO: at most 64 characters


@dataclass
class Deidentifier:
    """One export: one UID map, one date shift, one pseudonym. Reuse it for every file of the export."""

    pseudonym: str
    shift_days: int = field(default_factory=lambda: -secrets.choice(range(30, 366)))
    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    uid_map: dict[str, str] = field(default_factory=dict)

    def new_uid(self, old: str) -> str:
        old = str(old)
        if old not in self.uid_map:
            # Deterministic from a per-export secret: consistent within the export, unlinkable outside it.
            self.uid_map[old] = str(generate_uid(prefix="2.25.", entropy_srcs=[self.salt, old]))
        return self.uid_map[old]

    def shift_date(self, value: str) -> str:
        value = str(value).strip()
        if len(value) < 8 or not value[:8].isdigit():
            return ""
        try:
            day = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        except ValueError:
            return ""
        return (day + timedelta(days=self.shift_days)).strftime("%Y%m%d") + value[8:]

    @staticmethod
    def burned_in(ds: Dataset) -> bool:
        flag = str(ds.get("BurnedInAnnotation", "")).strip().upper()
        if flag == "YES":
            return True
        return flag != "NO" and str(ds.get("Modality", "")).upper() in BURNED_IN_LIKELY

    def apply(self, ds: Dataset) -> Dataset:
        """De-identify `ds` in place (and its file meta); return it."""
        # The 128-byte preamble is free-form application data that no DICOM reader looks at (PS3.10 7.1): it
        # may name the source system or carry a second file (TIFF header, HTML). Written as zeros.
        ds.preamble = None
        ds.remove_private_tags()
        self._walk(ds)
        ds.PatientName = self.pseudonym
        ds.PatientID = self.pseudonym
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = DEID_METHOD
        codes = []
        for value, meaning in (("113100", "Basic Application Confidentiality Profile"),
                               ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")):
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(codes)
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            if "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = self.new_uid(meta.MediaStorageSOPInstanceUID)
            for kw in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "ReceivingApplicationEntityTitle",
                       "PrivateInformation", "PrivateInformationCreatorUID"):
                if kw in meta:
                    delattr(meta, kw)
        return ds

    def _walk(self, ds: Dataset) -> None:
        for elem in list(ds):
            tag = elem.tag
            group = tag.group
            # Curves (50xx) and overlay data/comments (60xx,3000 / 60xx,4000) may hold identifying text.
            if 0x5000 <= group <= 0x50FF or (0x6000 <= group <= 0x60FF and tag.element in (0x3000, 0x4000)):
                del ds[tag]
                continue
            action = ACTIONS.get(elem.keyword)
            if action == "X":
                del ds[tag]
                continue
            if elem.VR == "SQ":
                for item in elem.value or []:
                    self._walk(item)
                continue
            if elem.VR == "UI":
                elem.value = self._uid_value(elem.value)
                continue
            if elem.VR in ("DA", "DT"):
                elem.value = self._map_multi(elem.value, self.shift_date)
                continue
            if action == "Z":
                elem.value = ""
            elif action == "D":
                elem.value = "ANONYMOUS" if elem.VR == "PN" else ("0" if elem.VR in ("IS", "DS") else "ANON")
            elif elem.VR == "PN":
                del ds[tag]  # any other person's name: the profile's blanket rule

    def _uid_value(self, value):
        def one(uid):
            uid = str(uid)
            if not uid:
                return uid
            # Registered DICOM UIDs (SOP classes, transfer syntaxes, coding schemes) identify nobody: keep them.
            return uid if UID(uid).name != uid else self.new_uid(uid)

        return self._map_multi(value, one)

    @staticmethod
    def _map_multi(value, fn):
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            return [fn(v) for v in value]
        return fn(value)


def age_band(dob: date, at: datetime) -> str:
    """HIPAA safe harbour: ages over 89 are reported as '90 or older'."""
    years = at.year - dob.year - ((at.month, at.day) < (dob.month, dob.day))
    return "90 or older" if years >= 90 else str(years)
