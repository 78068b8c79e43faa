"""One mapping from an audit action to a plain sentence."""
from review_portal.audit.wording import PHRASES, phrase, sentence


def test_known_actions_read_as_sentences():
    assert sentence("images.viewed", who="Dr Stone", case="SO-2026-00061") == "Dr Stone viewed the images of SO-2026-00061."
    assert sentence("case.viewed", who="Dr Stone", case="this case") == "Dr Stone opened this case."
    assert phrase("follow_up.asked", "SO-1") == "asked a follow-up question on SO-1"


def test_no_person_and_refusals_and_unknown_actions():
    assert sentence("review.near_due", case="SO-1") == "The system noted that the review of SO-1 is nearly due."
    assert sentence("case.viewed", who="A", case="SO-1", outcome="denied") == "A opened SO-1 (refused)."
    assert sentence("access.denied", who="A", case="SO-1", outcome="denied") == "A was refused access to SO-1."
    text = sentence("something.new_here", who="A", case="SO-1")
    assert text == "A recorded “something new here” on SO-1." and "something.new_here" not in text


def test_every_phrase_names_the_case_once_and_never_the_raw_action():
    for action, words in PHRASES.items():
        assert words.count("{case}") == 1, action
        assert action not in words
