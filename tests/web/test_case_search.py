"""Search, filter and sort on the case lists (/cases): server-side, scoped to the user, literal, audited."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from review_portal.audit.models import AuditEvent


def _patients(html: str) -> list[str]:
    """The patient names in the list's rows, in order."""
    return re.findall(r"<td[^>]*>([^<]+)<br><small class=\"muted\">[^<]*MRN", html)


def _refs(html: str) -> list[str]:
    return re.findall(r'<a href="/cases/\d+">(SO-[0-9-]+)</a>', html)


def test_search_by_patient_name_mrn_reference_referrer_and_reviewer(make_case, users, login_as):
    make_case("assigned", patient_name="Alice Smith", patient_mrn="MRN-100")
    jones = make_case("assigned", patient_name="Bob Jones", patient_mrn="HX-7", by=users["other_referring"])
    make_case("assigned", patient_name="Carol Gut", patient_mrn="GI-3", cancer_site="gi")
    client = login_as("coordinator")

    def found(q):
        return _patients(client.get("/cases", query_string={"q": q}).get_data(as_text=True))

    assert found("smith") == ["Alice Smith"]             # part of the name, any case
    assert found("ALICE SM") == ["Alice Smith"]
    assert found("mrn-100") == ["Alice Smith"]           # MRN
    assert found(jones.reference) == ["Bob Jones"]        # reference
    assert found("Other Referring") == ["Bob Jones"]      # the referrer's name
    assert found("Other Reviewer") == ["Carol Gut"]       # the reviewer's name (GI goes to other_reviewer)
    assert sorted(found("")) == ["Alice Smith", "Bob Jones", "Carol Gut"]


def test_filter_by_priority_and_status_together_with_text(make_case, login_as):
    make_case("assigned", patient_name="Urgent Dana", priority="urgent")
    make_case("assigned", patient_name="Routine Dana")
    make_case("withdrawn", patient_name="Gone Dana", priority="urgent")
    client = login_as("coordinator")
    html = client.get("/cases?q=dana&priority=urgent").get_data(as_text=True)
    assert sorted(_patients(html)) == ["Gone Dana", "Urgent Dana"]
    html = client.get("/cases?q=dana&priority=urgent&status=assigned").get_data(as_text=True)
    assert _patients(html) == ["Urgent Dana"]
    # Unknown values are ignored rather than breaking the page.
    html = client.get("/cases?q=dana&priority=whenever&sort=bogus&dir=sideways").get_data(as_text=True)
    assert sorted(_patients(html)) == ["Gone Dana", "Routine Dana", "Urgent Dana"]


def test_sort_orders(make_case, login_as):
    b = make_case("in_review", patient_name="Bravo Patient", cancer_site="thoracic")
    a = make_case("triage", patient_name="Alpha Patient", cancer_site="pediatric", priority="urgent")
    c = make_case("assigned", patient_name="Charlie Patient")
    by_due = [name for _, _, name in sorted((x.due_at, x.id, x.patient_name) for x in (a, b, c))]
    client = login_as("coordinator")

    def order(query):
        return _patients(client.get(f"/cases?{query}").get_data(as_text=True))

    assert order("sort=patient") == ["Alpha Patient", "Bravo Patient", "Charlie Patient"]
    assert order("sort=patient&dir=desc") == ["Charlie Patient", "Bravo Patient", "Alpha Patient"]
    assert order("sort=reference") == ["Bravo Patient", "Alpha Patient", "Charlie Patient"]
    assert order("sort=reference&dir=desc") == ["Charlie Patient", "Alpha Patient", "Bravo Patient"]
    assert order("sort=submitted&dir=desc") == ["Charlie Patient", "Alpha Patient", "Bravo Patient"]  # same time: id
    assert order("sort=priority")[0] == "Alpha Patient"            # urgent first
    assert order("sort=priority&dir=desc")[-1] == "Alpha Patient"
    # Status follows the lifecycle (triage, assigned, in review), not the alphabet (assigned, in_review, triage).
    assert order("sort=status") == ["Alpha Patient", "Charlie Patient", "Bravo Patient"]
    assert order("sort=status&dir=desc") == ["Bravo Patient", "Charlie Patient", "Alpha Patient"]
    assert order("sort=due") == by_due
    assert order("sort=due&dir=desc") == list(reversed(by_due))


def test_a_reviewers_search_never_leaves_their_worklist(make_case, login_as):
    make_case("assigned", patient_name="Shared Name", patient_mrn="SAME-1")                   # to reviewer
    theirs = make_case("assigned", patient_name="Shared Name", patient_mrn="SAME-2", cancer_site="gi")  # other
    client = login_as("reviewer")
    html = client.get("/cases?q=shared").get_data(as_text=True)
    assert _patients(html) == ["Shared Name"] and "SAME-2" not in html and "SAME-1" in html
    for q in ("SAME-2", theirs.reference, "Other Reviewer"):
        html = client.get("/cases", query_string={"q": q}).get_data(as_text=True)
        assert _patients(html) == [] and "No cases match" in html, q
    # A referrer's search stays within their own referrals too.
    html = login_as("other_referring").get("/cases?q=shared").get_data(as_text=True)
    assert _patients(html) == [] and "No cases match" in html


def test_percent_and_underscore_are_literal(make_case, login_as):
    make_case("assigned", patient_name="Plain Patient", patient_mrn="AB_12")
    make_case("assigned", patient_name="Other Patient", patient_mrn="ABX12")
    make_case("assigned", patient_name="Percent Patient", patient_mrn="P%1")
    client = login_as("coordinator")

    def found(q):
        return sorted(_patients(client.get("/cases", query_string={"q": q}).get_data(as_text=True)))

    assert found("AB_1") == ["Plain Patient"]        # _ is not "any one character"
    assert found("%") == ["Percent Patient"]         # % is not "anything"
    assert found("P%") == ["Percent Patient"]
    assert found("\\") == []                         # the escape character itself is literal too
    assert found("'; drop table cases; --") == []
    assert found("Patient") == ["Other Patient", "Percent Patient", "Plain Patient"]


def test_the_search_is_audited_once_with_its_terms(db, make_case, users, login_as):
    shown = make_case("assigned", patient_name="Audited Person", patient_mrn="AUD-1")
    make_case("assigned", patient_name="Hidden Person", patient_mrn="HID-1")
    client = login_as("coordinator")
    assert client.get("/cases").status_code == 200
    assert db.scalars(select(AuditEvent).where(AuditEvent.action == "cases.searched")).all() == []  # no search yet
    assert client.get("/cases?q=audited&priority=routine&sort=patient&dir=desc").status_code == 200
    db.expire_all()
    [event] = db.scalars(select(AuditEvent).where(AuditEvent.action == "cases.searched")).all()
    assert event.actor_id == users["coordinator"].id and event.case_id is None
    assert "q='audited'" in event.detail and "priority=routine" in event.detail and "1 matched" in event.detail
    assert "Hidden" not in event.detail and "AUD-1" not in event.detail  # only what was typed, not the results
    listed = db.scalars(select(AuditEvent.case_id).where(AuditEvent.action == "case.listed",
                                                         AuditEvent.actor_id == users["coordinator"].id)).all()
    assert shown.id in listed


def test_the_query_is_in_the_url_and_kept_by_the_pager(app, make_case, login_as):
    app.config["PAGE_SIZE"] = 1
    for name in ("Pager One", "Pager Two", "Other Three"):
        make_case("assigned", patient_name=name)
    client = login_as("coordinator")
    html = client.get("/cases?q=pager&sort=patient&dir=desc").get_data(as_text=True)
    assert _patients(html) == ["Pager Two"] and 'method="get"' in html and 'value="pager"' in html
    [link] = re.findall(r'<a href="([^"]+)">Next', html)
    args = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
    assert args == {"q": ["pager"], "sort": ["patient"], "dir": ["desc"], "page": ["2"]}
    assert _patients(client.get(link.replace("&amp;", "&")).get_data(as_text=True)) == ["Pager One"]


def test_empty_result_says_so_and_offers_to_clear(make_case, login_as):
    make_case("assigned", patient_name="Someone Else")
    html = login_as("coordinator").get("/cases?q=nobody-here").get_data(as_text=True)
    assert "No cases match “nobody-here”" in html
    assert '<a href="/cases">Clear the search</a>' in html

