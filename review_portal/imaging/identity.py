"""Is this the same patient? Comparing a study's DICOM patient identity with the referral, and studies with
each other. Pure functions: no database, no app; the ingest (imaging.identity_services) stores what they find.

What counts as the same:

- **Name.** DICOM PersonName is `Family^Given^Middle^Prefix^Suffix` (only the first, alphabetic, group
  before any `=`); the referral is free text ("Jane Doe", "Doe, Jane"). Both become sets of words: accents
  dropped (Unicode NFKD, combining marks removed), case folded, punctuation removed (hyphens and commas
  separate words, apostrophes and dots join them). Prefix and suffix (Dr, Jr) are not compared. The names
  agree when the word sets are equal, or when one holds the other and they share at least two words (a middle
  name given on one side only), so "Jane Doe" == "DOE^JANE" == "Doe^Jane^Marie", but "DOE" != "Jane Doe".
- **ID.** The MRN and PatientID (or one of OtherPatientIDsSequence) agree after case folding and removing
  spaces, hyphens, dots and slashes. An ID whose IssuerOfPatientID is in the configured list of accepted
  issuers (PATIENT_ID_ACCEPTED_ISSUERS: outside sites whose IDs are not our MRNs) is not a mismatch; it is
  reported as an "outside ID".
- **Birth date.** DICOM DA (YYYYMMDD, old YYYY.MM.DD accepted) against the referral's date.
- **Sex.** M / F / O against the referral's female / male / other; "unknown" in the referral or an empty
  value in the file compares with nothing.

A value missing from the file (an anonymised header) is not a mismatch: there is nothing to disagree with.
"""
from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "FIELD_LABELS", "Difference", "PatientIdentity", "compare", "compare_studies", "format_dicom_date",
    "format_dicom_name", "name_words", "names_match", "normalise_id", "parse_dicom_date", "referral_identity",
    "same_birth_date", "same_id", "same_sex", "sex_code",
]

FIELD_LABELS = {
    "name": "Patient name",
    "id": "Patient ID / MRN",
    "birth_date": "Birth date",
    "sex": "Sex",
    "several_patients": "Another study in this referral",
}

SEX_CODES = {"female": "F", "male": "M", "other": "O", "f": "F", "m": "M", "o": "O"}
SEX_WORDS = {"F": "female", "M": "male", "O": "other"}

_WORD_SEPARATORS = re.compile(r"[\s,;/_\-^]+")
_NOT_WORD = re.compile(r"[^\w]+")
_ID_SEPARATORS = re.compile(r"[\s\-./]+")


@dataclass(frozen=True)
class PatientIdentity:
    """Who a study (or the referral) says the patient is. `dicom_name` tells how `name` is written."""

    name: str = ""
    id: str = ""
    birth_date: str = ""  # DICOM DA as in the file, or ISO for the referral
    sex: str = ""  # DICOM code M / F / O, or "" when not stated
    issuer: str = ""
    other_ids: tuple[tuple[str, str], ...] = ()  # (id, issuer) from OtherPatientIDsSequence
    dicom_name: bool = True


@dataclass(frozen=True)
class Difference:
    """One field that differs: what the referral (or the other study) says, and what this study says."""

    field: str
    referral_value: str
    dicom_value: str
    note: str = ""

    @property
    def label(self) -> str:
        return FIELD_LABELS.get(self.field, self.field)


@dataclass
class Comparison:
    differences: list[Difference] = field(default_factory=list)
    outside_id: str = ""  # the study's ID when its issuer is an accepted outside one

    @property
    def same_patient(self) -> bool:
        return not self.differences


# -- names ------------------------------------------------------------------------------------------------

def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _words(text: str) -> list[str]:
    out = []
    for chunk in _WORD_SEPARATORS.split(_fold(text)):
        word = _NOT_WORD.sub("", chunk).replace("_", "")
        if word:
            out.append(word)
    return out


def name_words(value: str, *, dicom: bool) -> frozenset[str]:
    """The words of a name that are compared: family, given and middle names (not prefix or suffix)."""
    value = (value or "").strip()
    if dicom:
        alphabetic = value.split("=")[0]
        components = alphabetic.split("^")[:3]
        return frozenset(w for part in components for w in _words(part))
    return frozenset(_words(value))


def names_match(referral: str, dicom: str, *, referral_is_dicom: bool = False) -> bool:
    a = name_words(referral, dicom=referral_is_dicom)
    b = name_words(dicom, dicom=True)
    if not a or not b:
        return True  # nothing to disagree with
    if a == b:
        return True
    return (a <= b or b <= a) and len(a & b) >= 2


def format_dicom_name(value: str) -> str:
    """A DICOM name as people write it: "DOE^JANE^M" -> "DOE, JANE M"."""
    parts = [p.strip() for p in (value or "").split("=")[0].split("^")]
    family, given = (parts + ["", ""])[:2]
    rest = " ".join(p for p in parts[2:3] if p)
    first = " ".join(x for x in (given, rest) if x)
    return f"{family}, {first}" if family and first else (family or first)


# -- IDs --------------------------------------------------------------------------------------------------

def normalise_id(value: str) -> str:
    return _ID_SEPARATORS.sub("", _fold((value or "").strip()))


def same_id(mrn: str, dicom_id: str) -> bool:
    a, b = normalise_id(mrn), normalise_id(dicom_id)
    return not a or not b or a == b


def _accepted(issuer: str, accepted_issuers) -> bool:
    wanted = {normalise_id(i) for i in accepted_issuers or () if str(i).strip()}
    return bool(issuer.strip()) and normalise_id(issuer) in wanted


# -- dates and sex ----------------------------------------------------------------------------------------

def parse_dicom_date(value: str) -> datetime.date | None:
    text = (value or "").strip().replace(".", "").replace("-", "")
    if len(text) < 8:
        return None
    try:
        return datetime.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def format_dicom_date(value: str) -> str:
    parsed = parse_dicom_date(value)
    return parsed.isoformat() if parsed else (value or "").strip()


def same_birth_date(referral: str, dicom: str) -> bool:
    if not (referral or "").strip() or not (dicom or "").strip():
        return True
    a, b = parse_dicom_date(referral), parse_dicom_date(dicom)
    return a is not None and a == b


def sex_code(value: str) -> str:
    """M / F / O from a DICOM code or the referral's word; "" for unknown or anything else."""
    return SEX_CODES.get((value or "").strip().casefold(), "")


def same_sex(referral: str, dicom: str) -> bool:
    a, b = sex_code(referral), sex_code(dicom)
    return not a or not b or a == b


def _sex_text(code: str, raw: str) -> str:
    return SEX_WORDS.get(code, (raw or "").strip())


# -- comparing --------------------------------------------------------------------------------------------

def referral_identity(*, name: str, mrn: str, birth_date: datetime.date | None, sex: str) -> PatientIdentity:
    """The referral's patient, in the terms the comparison uses."""
    return PatientIdentity(name=name or "", id=mrn or "", birth_date=birth_date.isoformat() if birth_date else "",
                           sex=sex_code(sex), dicom_name=False)


def compare(referral: PatientIdentity, study: PatientIdentity, *, accepted_issuers=()) -> Comparison:
    """Every field in which `study` says another patient than `referral`."""
    out = Comparison()
    ref_name = referral.name if not referral.dicom_name else format_dicom_name(referral.name)
    if not names_match(referral.name, study.name, referral_is_dicom=referral.dicom_name):
        out.differences.append(Difference("name", ref_name, format_dicom_name(study.name)))
    ids = [(study.id, study.issuer)] + list(study.other_ids)
    if not any(same_id(referral.id, i) for i, _ in ids if i.strip()) and study.id.strip():
        if _accepted(study.issuer, accepted_issuers):
            out.outside_id = f"{study.id} ({study.issuer})"
        else:
            shown = study.id + (f" (issuer {study.issuer})" if study.issuer.strip() else "")
            out.differences.append(Difference("id", referral.id, shown))
    if not same_birth_date(referral.birth_date, study.birth_date):
        out.differences.append(Difference("birth_date", format_dicom_date(referral.birth_date),
                                          format_dicom_date(study.birth_date)))
    if not same_sex(referral.sex, study.sex):
        out.differences.append(Difference("sex", _sex_text(sex_code(referral.sex), referral.sex),
                                          _sex_text(sex_code(study.sex), study.sex)))
    return out


def describe(identity: PatientIdentity) -> str:
    """One line naming a study's patient, for a banner or the letter."""
    parts = [format_dicom_name(identity.name) if identity.dicom_name else identity.name,
             f"ID {identity.id}" if identity.id.strip() else "",
             f"born {format_dicom_date(identity.birth_date)}" if identity.birth_date.strip() else "",
             f"sex {_sex_text(sex_code(identity.sex), identity.sex)}" if identity.sex.strip() else ""]
    return ", ".join(p for p in parts if p) or "no patient identity in the file"


def compare_studies(studies: list[tuple[object, PatientIdentity]], *, accepted_issuers=()) -> list[tuple[object, object]]:
    """Pairs (earlier key, later key) of studies in one referral that name different patients.

    Each later study is compared with every earlier one, as if the earlier one were the referral; a pair is
    reported when any field differs. An ID from an accepted outside issuer is not a difference here either.
    """
    pairs = []
    for n, (key, identity) in enumerate(studies):
        for other_key, other in studies[:n]:
            if not compare(other, identity, accepted_issuers=accepted_issuers).same_patient:
                pairs.append((other_key, key))
    return pairs
