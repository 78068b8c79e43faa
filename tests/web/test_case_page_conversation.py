"""The case page's one conversation: every entry in order with its kind, answers written at the entry they answer."""
from __future__ import annotations

import re
from datetime import timedelta

from review_portal.cases.models import Case
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.signing import sign_and_issue_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD

LABELS = ["Message", "Request for information", "Answer", "Follow-up question",
          "Answer to follow-up — signed addendum"]


def _labels(page: str) -> list[str]:
    return re.findall(r'<span class="kind-label">([^<]+)</span>', page)


def _entries(page: str) -> list[str]:
    thread = page.split('<ol class="thread">', 1)[1].split("</ol>", 1)[0]
    return thread.split('<li class="msg ')[1:]


def _sign(db, storage, case_id):
    db.expire_all()
    case = db.get(Case, case_id)
    ctx = {"by": case.reviewer, "ip": "127.0.0.1"}
    save_draft(db, case, OpinionDraft("refined", "modify", "Stage IB.", "Lobectomy.", "Second focus."),
               based_on_version=None, now=NOW + timedelta(hours=5), **ctx)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                          now=NOW + timedelta(hours=6), **ctx)
    db.commit()


def test_one_thread_in_order_with_labels_and_answers_in_place(login_as, make_case, db, storage):
    case = make_case("in_review", cancer_site="thoracic")
    reviewer, referrer = login_as("reviewer"), login_as("referring")
    assert reviewer.post(f"/cases/{case.id}/messages", data={"body": "Reading the scans now."}).status_code == 302
    assert reviewer.post(f"/cases/{case.id}/information-requests",
                         data={"items": ["records"], "detail": "Please send the operative note."}).status_code == 302

    # The referrer answers at the request itself, not in a box elsewhere on the page.
    page = referrer.get(f"/cases/{case.id}").get_data(as_text=True)
    entries = _entries(page)
    assert _labels(page) == ["Message", "Request for information"]
    assert 'action="/cases/%d/information-requests/answer"' % case.id in entries[1]
    assert 'id="send-answer"' in entries[1] and 'id="send-answer"' not in entries[0]
    assert page.count('id="send-answer"') == 1
    # The reviewer sees the entry but no answer form.
    assert 'id="send-answer"' not in reviewer.get(f"/cases/{case.id}").get_data(as_text=True)

    assert referrer.post(f"/cases/{case.id}/information-requests/answer", content_type="multipart/form-data",
                         data={"answer": "Operative note: R0 resection."}).status_code == 302
    assert 'id="send-answer"' not in referrer.get(f"/cases/{case.id}").get_data(as_text=True)

    _sign(db, storage, case.id)
    assert referrer.post(f"/cases/{case.id}/follow-ups", data={"question": "Would you test for ALK too?"}).status_code == 302

    # The reviewer who signed answers at the question; the referrer sees it waiting there.
    page = reviewer.get(f"/cases/{case.id}").get_data(as_text=True)
    entries = _entries(page)
    assert _labels(page) == LABELS[:4]
    answer_url = re.search(rf"/cases/{case.id}/follow-ups/\d+/answer", entries[3]).group(0)
    assert not any(re.search(r"/follow-ups/\d+/answer", e) for e in entries[:3])
    assert "Awaiting the reviewer's answer." in _entries(referrer.get(f"/cases/{case.id}").get_data(as_text=True))[3]

    assert reviewer.post(answer_url, data={"answer": "Yes: ALK and ROS1 by NGS.", "attest": "y",
                                           "password": PASSWORD}).status_code == 302
    page = referrer.get(f"/cases/{case.id}").get_data(as_text=True)
    assert _labels(page) == LABELS
    entries = _entries(page)
    bodies = ["Reading the scans now.", "Please send the operative note.", "Operative note: R0 resection.",
              "Would you test for ALK too?", "ALK and ROS1 by NGS."]
    for entry, label, body in zip(entries, LABELS, bodies):
        assert label in entry and body in entry
    # One box, no separate follow-up panel; writing stays at the end, after the last entry.
    assert 'id="follow-ups"' not in page and "<h2>Follow-up questions" not in page
    thread_end = page.index("</ol>", page.index('<ol class="thread">'))
    assert page.index(f'action="/cases/{case.id}/messages"') > thread_end
    assert page.index(f'action="/cases/{case.id}/follow-ups"') > thread_end
