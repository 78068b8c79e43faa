"""The coordinator's activity search in plain words, over the cases they may open today; the case page's activity
panel in the same words; the administrator's full audit log unchanged."""
from __future__ import annotations

import html
from datetime import timedelta

from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case


def _archive(db, case, days=90):
    db.get(Case, case.id).closed_at = case.closed_at - timedelta(days=days)
    db.commit()


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _results(response) -> str:
    """The result table only (the search form echoes what was typed)."""
    assert response.status_code == 200
    return _text(response).split('<table class="table activity-results">', 1)[1].split("</table>", 1)[0]


def test_activity_search_in_plain_words_only_for_cases_in_reach(make_case, login_as, db):
    clients = {key: login_as(key) for key in ("coordinator", "reviewer", "referring", "admin")}
    open_case = make_case("in_review", cancer_site="thoracic")
    archived = make_case("closed")
    _archive(db, archived)
    open_ref, archived_ref = open_case.reference, archived.reference
    assert clients["reviewer"].get(f"/cases/{open_case.id}/viewer").status_code == 200
    assert clients["referring"].get(f"/cases/{archived.id}").status_code == 200  # the referrer still sees their own
    coordinator = clients["coordinator"]

    page = _results(coordinator.get("/activity"))
    assert f"Reviewer, MD viewed the images of {open_ref}." in page
    assert f"Referring, MD submitted the referral {open_ref}." in page
    assert "images.viewed" not in page and "case.viewed" not in page
    # Nothing of a case the coordinator may not open today: the archived case without emergency access.
    assert archived_ref not in page
    assert archived_ref not in _results(coordinator.get(f"/activity?case={archived_ref}"))
    assert archived_ref not in _results(coordinator.get("/activity?person=referring"))

    # Searching by person and case narrows the sentences.
    by_reviewer = _results(coordinator.get(f"/activity?person=reviewer&case={open_ref}"))
    assert f"Reviewer, MD viewed the images of {open_ref}." in by_reviewer
    assert "Referring, MD" not in by_reviewer

    # With emergency access the archived case comes into reach (and only then).
    reason = "Patient re-presented at the ED; previous opinion needed now"
    assert coordinator.post(f"/cases/{archived.id}/emergency-access", data={"reason": reason}).status_code == 302
    assert f"Referring, MD opened {archived_ref}." in _results(coordinator.get(f"/activity?case={archived_ref}"))

    # The search is itself audited, one row per case shown.
    seen = set(db.scalars(select(AuditEvent.case_id).where(AuditEvent.action == "activity.viewed")))
    assert open_case.id in seen

    # Read-only and for staff: others are refused.
    assert clients["referring"].get("/activity").status_code == 403
    assert clients["reviewer"].get("/activity").status_code == 403
    assert coordinator.post("/activity").status_code == 405


def test_case_page_activity_panel_speaks_plainly(make_case, login_as):
    clients = {key: login_as(key) for key in ("coordinator", "reviewer")}
    case = make_case("in_review", cancer_site="thoracic")
    assert clients["reviewer"].get(f"/cases/{case.id}/viewer").status_code == 200
    page = _text(clients["coordinator"].get(f"/cases/{case.id}"))
    panel = page.split("<h2>Activity</h2>", 1)[1].split("</section>", 1)[0]
    assert "Reviewer, MD viewed the images of this case." in panel
    assert "Coordinator opened this case." in panel
    assert "images.viewed" not in panel and "case.viewed" not in panel
    # The reviewer has no activity panel, as before.
    assert "<h2>Activity</h2>" not in clients["reviewer"].get(f"/cases/{case.id}").get_data(as_text=True)


def test_admin_audit_log_keeps_raw_actions_and_export(make_case, login_as):
    clients = {key: login_as(key) for key in ("admin", "reviewer")}
    case = make_case("in_review", cancer_site="thoracic")
    assert clients["reviewer"].get(f"/cases/{case.id}/viewer").status_code == 200
    page = _text(clients["admin"].get(f"/admin/audit?case={case.reference}"))
    assert "<th>Detail</th>" in page and "images.viewed" in page and "reviewer@test.example" in page
    csv = clients["admin"].get("/admin/audit/disclosures.csv?patient_mrn=MRN-1")
    assert csv.status_code == 200 and "images.viewed" in csv.get_data(as_text=True)
