"""The words of the summary for the patient: the plain wording that prefills it, the reading level, the glossary.

Nothing here touches the database: the wording and the glossary are data files beside this module
(data/summary_wording.json, data/glossary.json), and the reading level is one formula, the Flesch-Kincaid
grade computed by textstat, used by the autosave and printed on the PDF alike.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import textstat

DATA = Path(__file__).resolve().parent / "data"
# Health literacy guidance (AMA, NIH): patient material at grade 6 to 8.
TARGET_GRADE = 8.0
READING_FORMULA = "Flesch-Kincaid grade"


@cache
def wording() -> dict:
    return json.loads((DATA / "summary_wording.json").read_text(encoding="utf-8"))


@cache
def glossary_terms() -> tuple[dict, ...]:
    terms = json.loads((DATA / "glossary.json").read_text(encoding="utf-8"))["terms"]
    return tuple(terms)


# --- Reading level ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadingLevel:
    grade: float | None  # None: no text yet

    @property
    def on_target(self) -> bool:
        return self.grade is not None and self.grade <= TARGET_GRADE

    @property
    def label(self) -> str:
        if self.grade is None:
            return "Reading level: no text yet (aim for grade 8 or lower)"
        verdict = "good for most readers" if self.on_target else "too hard: use shorter sentences and common words"
        return f"Reading level: grade {self.grade:.1f} (aim for grade 8 or lower; {verdict})"

    def as_json(self) -> dict:
        return {"grade": self.grade, "grade_label": self.label, "grade_on_target": self.on_target,
                "grade_target": TARGET_GRADE, "grade_formula": READING_FORMULA}


def reading_level(text: str) -> ReadingLevel:
    """The Flesch-Kincaid grade of `text`, rounded to one decimal; never below 0 for very short words."""
    text = (text or "").strip()
    if not re.search(r"[A-Za-z]", text):
        return ReadingLevel(None)
    return ReadingLevel(round(max(0.0, float(textstat.flesch_kincaid_grade(text))), 1))


# --- Glossary -----------------------------------------------------------------------------------------------

def _pattern(form: str) -> str:
    words = [re.escape(w) for w in form.split()]
    # Plural-tolerant: the last word may take -s or -es (lymph node -> lymph nodes; biopsy -> biopsies is listed).
    return r"\s+".join(words) + r"(?:e?s)?"


@cache
def _compiled() -> tuple[tuple[dict, re.Pattern], ...]:
    out = []
    for entry in glossary_terms():
        forms = [entry["term"], *entry.get("forms", [])]
        alternatives = "|".join(_pattern(f) for f in sorted(forms, key=len, reverse=True))
        out.append((entry, re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)))
    return tuple(out)


def glossary_for(text: str) -> list[dict]:
    """The glossary entries whose term appears in `text` (whole words, any case, singular or plural),
    in alphabetical order, as plain {"term", "explanation"} values for the PDF."""
    found = [{"term": entry["term"], "explanation": entry["explanation"]}
             for entry, pattern in _compiled() if pattern.search(text or "")]
    return sorted(found, key=lambda e: e["term"].lower())


# --- Prefill ------------------------------------------------------------------------------------------------

def _records_phrase(*, scans: int, reports: int, history: int) -> str:
    words = wording()["records"]
    parts = []
    for key, n in (("scans", scans), ("reports", reports)):
        if n:
            parts.append(words[f"{key}_one"] if n == 1 else words[key].format(n=n))
    if history:
        parts.append(words["history"])
    if not parts:
        return words["history"]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def prefill(opinion: dict, *, referrer: str, scans: int, reports: int, history: int) -> dict:
    """The first draft from the signed opinion's structured fields: plain wording for its concordance
    categories, then the reviewers' own words for the lead to rewrite plainly.

    `opinion` holds plain values: diagnosis_concordance, plan_concordance, reviewer_diagnosis, recommended_plan,
    radpeer_score, impression.
    """
    words = wording()
    what = words["what_reviewed"].format(records=_records_phrase(scans=scans, reports=reports, history=history),
                                         referrer=referrer)
    conclusion = []
    if opinion.get("diagnosis_concordance") in words["diagnosis"]:
        conclusion.append(words["diagnosis"][opinion["diagnosis_concordance"]])
    if opinion.get("radpeer_score"):
        conclusion.append(words["radpeer"]["1" if opinion["radpeer_score"] == "1" else "other"])
    told = (opinion.get("reviewer_diagnosis") or opinion.get("impression") or "").strip()
    if told:
        conclusion.append(words["their_diagnosis"].format(text=told))
    treatment = []
    if opinion.get("plan_concordance") in words["plan"]:
        treatment.append(words["plan"][opinion["plan_concordance"]])
    if (opinion.get("recommended_plan") or "").strip():
        treatment.append(words["their_plan"].format(text=opinion["recommended_plan"].strip()))
    if not treatment:
        treatment.append(words["no_plan"])
    treatment.append(words["talk_to_doctor"])
    return {"what_reviewed": what, "conclusion": " ".join(conclusion), "treatment": " ".join(treatment)}
