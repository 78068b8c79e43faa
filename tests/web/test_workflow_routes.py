"""Routes for offers, the conversation, the dashboard and notifications, as each role."""
import io
import re

import pytest
from sqlalchemy import select

from review_portal.cases.models import Case
from review_portal.messaging.models import InformationRequest


def _pdf() -> bytes:
    from weasyprint import HTML

    return HTML(string="<p>Operative note (synthetic)</p>").write_pdf()


@pytest.mark.parametrize("role, expected", [("coordinator", 200), ("admin", 200), ("reviewer", 403),
                                            ("referring", 403)])
def test_dashboard_is_for_coordinators(login_as, make_case, role, expected):
    make_case("triage", cancer_site="pediatric")
    make_case("awaiting_information", cancer_site="thoracic")
    response = login_as(role).get("/dashboard")
    assert response.status_code == expected
    if expected == 200:
        page = response.get_data(as_text=True)
        assert "Triage queue" in page and "No eligible reviewer" in page and "On hold" in page


def test_decline_from_the_case_page_reroutes_and_hides_the_case(login_as, make_case, users, db):
    case = make_case("assigned", cancer_site="breast")
    reviewer = login_as("reviewer")
    page = reviewer.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "is offered to you" in page
    decline_url = re.search(rf"/cases/{case.id}/assignments/\d+/decline", page).group(0)
    assert reviewer.post(decline_url, data={"reason": ""}).status_code == 400
    assert reviewer.post(decline_url, data={"reason": "expertise", "note": "Not my field"}).status_code == 302
    assert reviewer.get(f"/cases/{case.id}").status_code == 404
    db.expire_all()
    # Nobody else covers breast oncology opinions here: the case lands in triage, with the decliner excluded.
    assert db.get(Case, case.id).status == "triage" and db.get(Case, case.id).reviewer is None
    coordinator_page = login_as("coordinator").get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Outside my expertise" in coordinator_page and "Not my field" in coordinator_page


def test_request_information_answer_with_a_report_and_resume(login_as, make_case, users, db):
    case = make_case("in_review", cancer_site="thoracic")
    reviewer, referrer, other = login_as("reviewer"), login_as("referring"), login_as("other_referring")
    # Only the reviewer at work asks; the referrer answers; nobody else sees the case.
    assert referrer.post(f"/cases/{case.id}/information-requests",
                         data={"items": ["records"], "detail": "x"}).status_code == 403
    assert reviewer.post(f"/cases/{case.id}/information-requests", data={"items": ["bogus"], "detail": "x"}).status_code == 400
    assert reviewer.post(f"/cases/{case.id}/information-requests",
                         data={"items": ["records"], "detail": "Please send the operative note."}).status_code == 302
    page = referrer.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Awaiting information" in page and "Please send the operative note." in page
    assert other.post(f"/cases/{case.id}/information-requests/answer", data={"answer": "hi"}).status_code == 404
    assert reviewer.post(f"/cases/{case.id}/information-requests/answer", data={"answer": "hi"}).status_code == 403
    bad = referrer.post(f"/cases/{case.id}/information-requests/answer", content_type="multipart/form-data",
                        data={"answer": "", "documents": [(io.BytesIO(b"not a pdf"), "note.pdf")]})
    assert bad.status_code == 400
    db.expire_all()
    assert db.get(Case, case.id).status == "awaiting_information" and not db.get(Case, case.id).documents
    ok = referrer.post(f"/cases/{case.id}/information-requests/answer", content_type="multipart/form-data",
                       data={"answer": "Attached.", "documents": [(io.BytesIO(_pdf()), "operative-note.pdf")]})
    assert ok.status_code == 302
    db.expire_all()
    resumed = db.get(Case, case.id)
    assert resumed.status == "in_review" and [d.filename for d in resumed.documents] == ["operative-note.pdf"]
    request = db.scalar(select(InformationRequest).where(InformationRequest.case_id == case.id))
    assert request.status == "answered" and request.attachments_summary == "1 report(s)"


def test_messages_and_notifications_with_unread_count(login_as, make_case, users):
    case = make_case("in_review", cancer_site="thoracic")
    referrer, reviewer = login_as("referring"), login_as("reviewer")
    assert referrer.post(f"/cases/{case.id}/messages", data={"body": ""}).status_code == 400
    assert referrer.post(f"/cases/{case.id}/messages", data={"body": "Scans re-sent on CD."}).status_code == 302
    page = reviewer.get("/cases").get_data(as_text=True)
    unread = int(re.search(r'class="unread-count"[^>]*>(\d+)<', page).group(1))
    assert unread == 2  # the offer, and the message
    listing = reviewer.get("/notifications").get_data(as_text=True)
    assert f"New message from Referring on case {case.reference}." in listing
    note_id = re.findall(r'/notifications/(\d+)"', listing)[0]
    opened = reviewer.get(f"/notifications/{note_id}")
    assert opened.status_code == 302 and opened.headers["Location"].startswith(f"/cases/{case.id}")
    assert referrer.get(f"/notifications/{note_id}").status_code == 404  # someone else's
    assert reviewer.post("/notifications/read").status_code == 302
    assert 'class="unread-count"' not in reviewer.get("/cases").get_data(as_text=True)
    assert "Scans re-sent on CD." in reviewer.get(f"/cases/{case.id}").get_data(as_text=True)


def test_follow_up_questions_are_limited(app, login_as, make_case):
    case = make_case("acknowledged", cancer_site="thoracic")
    referrer = login_as("referring")
    for n in range(app.config["FOLLOW_UP_QUESTIONS_MAX"]):
        assert referrer.post(f"/cases/{case.id}/follow-ups", data={"question": f"Question {n}?"}).status_code == 302
    refused = referrer.post(f"/cases/{case.id}/follow-ups", data={"question": "One more?"})
    assert refused.status_code == 400 and "All 3 follow-up questions" in refused.get_data(as_text=True)
    assert login_as("other_reviewer").post(f"/cases/{case.id}/follow-ups/1/answer", data={"answer": "x"}).status_code == 404


def test_cancel_is_for_coordinators_and_withdraw_for_the_referrer(login_as, make_case, db):
    case = make_case("in_review", cancer_site="thoracic")
    assert login_as("referring").post(f"/cases/{case.id}/cancel", data={"reason": "dup", "confirm": "yes"}).status_code == 403
    assert login_as("coordinator").post(f"/cases/{case.id}/cancel", data={"reason": "Duplicate of SO-1", "confirm": "yes"}).status_code == 302
    db.expire_all()
    assert db.get(Case, case.id).status == "cancelled"
    assert login_as("referring").post(f"/cases/{case.id}/withdraw", data={"reason": "late", "confirm": "yes"}).status_code == 409


def test_reviewer_records_out_of_office(login_as):
    reviewer = login_as("reviewer")
    assert reviewer.post("/availability", data={"starts_on": "2026-12-10", "ends_on": "2026-12-01"}).status_code == 400
    assert reviewer.post("/availability", data={"starts_on": "2026-12-01", "ends_on": "2026-12-10"}).status_code == 302
    assert "01 Dec 2026 – 10 Dec 2026" in reviewer.get("/availability").get_data(as_text=True)
    assert login_as("referring").get("/availability").status_code == 403


def test_coordinator_can_move_a_case_nobody_matches(login_as, make_case, users):
    """The triage case no reviewer matches: the page lists everyone with their fit, takes an override with a reason,
    and extends the deadline; a closed case answers 409 with a way back."""
    case = make_case("triage", cancer_site="pediatric")
    coordinator = login_as("coordinator")
    page = coordinator.get(f"/cases/{case.id}/reassign")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Override needed: does not cover pediatric" in html and f"Back to {case.reference}" in html
    refused = coordinator.post(f"/cases/{case.id}/reassign", data={"reviewer_id": users["reviewer"].id})
    assert refused.status_code == 400 and "Give the reason for overriding" in refused.get_data(as_text=True)
    moved = coordinator.post(f"/cases/{case.id}/reassign", data={"reviewer_id": users["reviewer"].id,
                                                                 "override_reason": "Adolescent breast case"})
    assert moved.status_code == 302
    extended = coordinator.post(f"/cases/{case.id}/reviews/{case.lead_review.id}/extend",
                                data={"business_days": 3, "reason": "Outside imaging on its way"})
    assert extended.status_code == 302
    closed = make_case("closed")
    gone = coordinator.get(f"/cases/{closed.id}/reassign")
    assert gone.status_code == 409 and "Back to the case" in gone.get_data(as_text=True)
