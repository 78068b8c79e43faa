"""The reading level (one formula: Flesch-Kincaid grade, by textstat) and the glossary matching."""
import pytest

from review_portal.letters.summary_text import (
    TARGET_GRADE,
    glossary_for,
    glossary_terms,
    prefill,
    reading_level,
    wording,
)


def test_known_grade_by_hand():
    # 10 words, 1 sentence, 14 syllables: 0.39 * 10 + 11.8 * 1.4 - 15.59 = 4.83
    level = reading_level("The doctor looked at your scans and reports again today.")
    assert level.grade == 4.8 and level.on_target
    assert "grade 4.8" in level.label and "aim for grade 8 or lower" in level.label


def test_two_sentences_by_hand():
    # 18 words, 2 sentences, 22 syllables (textstat rounds syllables per word to 1.2):
    # 0.39 * 9 + 11.8 * 1.2 - 15.59 = 2.08
    assert reading_level("The doctor looked at your scans and reports again today. "
                         "We think the plan is right for you.").grade == 2.1


def test_hard_clinical_prose_is_far_above_target():
    level = reading_level("Notwithstanding considerable histopathological heterogeneity, multidisciplinary "
                          "deliberation unequivocally substantiated the characterisation.")
    assert level.grade > 20 and not level.on_target and "too hard" in level.label


@pytest.mark.parametrize("text", ["", "   ", "1 2 3 ..."])
def test_no_words_no_grade(text):
    level = reading_level(text)
    assert level.grade is None and not level.on_target
    assert level.as_json()["grade_target"] == TARGET_GRADE


def test_very_short_words_do_not_give_a_negative_grade():
    assert reading_level("The cat sat on the mat.").grade == 0.0


def test_glossary_has_the_curated_terms_with_explanations():
    terms = {t["term"] for t in glossary_terms()}
    assert len(terms) >= 25
    assert {"staging", "adjuvant", "neoadjuvant", "margin", "metastasis", "biopsy", "lymph node", "chemotherapy",
            "radiotherapy", "RECIST", "concordance"} <= terms
    assert all(10 < len(t["explanation"]) < 200 for t in glossary_terms())


@pytest.mark.parametrize("text, found", [
    ("Two BIOPSIES were taken.", ["biopsy"]),
    ("The lymph  nodes were clear.", ["lymph node"]),
    ("No metastases were seen.", ["metastasis"]),
    ("A clear margin.", ["margin"]),
    ("Margins were clear.", ["margin"]),
    ("adjuvant-free and readjuvanted", []),  # whole words only
    ("Neoadjuvant chemo, then radiotherapy; RECIST staging.", ["chemotherapy", "neoadjuvant", "radiotherapy", "RECIST",
                                                              "staging"]),
])
def test_glossary_matches_whole_words_any_case_and_plurals(text, found):
    assert [e["term"] for e in glossary_for(text)] == sorted(found, key=str.lower)


def test_prefill_wording_is_data_for_every_category():
    assert set(wording()["diagnosis"]) == {"confirmed", "refined", "different"}
    assert set(wording()["plan"]) == {"agree", "modify", "different"}
    radiology = prefill({"radpeer_score": "2b", "impression": "Small nodule."}, referrer="Dr Roe", scans=1, reports=0,
                        history=0)
    assert "saw some things in a different way" in radiology["conclusion"] and "Small nodule." in radiology["conclusion"]
    assert "one set of scan images" in radiology["what_reviewed"] and "Dr Roe" in radiology["what_reviewed"]
    assert "your own doctor will talk with you about treatment" in radiology["treatment"].lower()
