"""The figures dashboard through its routes: the demo history, exports that agree with the page, who sees what."""
import csv
import io
import re
from datetime import timedelta
from html.parser import HTMLParser

import pyotp
from pypdf import PdfReader
from sqlalchemy import func, select

from review_portal.cases.models import Case
from review_portal.db import session as db_session
from review_portal.demo import DEMO_PASSWORD, DEMO_TOTP_SECRET, seed
from review_portal.letters.models import Letter
from review_portal.opinions.models import Opinion
from review_portal.outcomes.models import OutcomeFollowUp
from review_portal.outcomes.services import request_due_outcomes


class Tables(HTMLParser):
    """The figure tables of a page: {figure key: [[cell text, ...], ...]} (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables, self.current, self.row, self.cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-figure" in attrs:
            self.current = self.tables.setdefault(attrs["data-figure"], [])
        elif self.current is not None and tag == "tr":
            self.row = []
        elif self.row is not None and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.current.append(self.row)
            self.row = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def tables_of(html: str) -> dict:
    parser = Tables()
    parser.feed(html)
    return parser.tables


def numbers(cells) -> list[str]:
    return [n for cell in cells for n in re.findall(r"\d+(?:\.\d+)?", cell)]


def demo_login(app, email):
    client = app.test_client()
    client.post("/login", data={"email": email, "password": DEMO_PASSWORD})
    r = client.post("/login/mfa", data={"code": pyotp.TOTP(DEMO_TOTP_SECRET).now()})
    assert r.status_code == 302 and "/login" not in r.headers["Location"]
    return client


def test_demo_history_dashboard_and_its_csv_and_pdf_exports_agree(app):
    db = db_session()
    assert seed(app, db)
    db.commit()
    # The demo history: 60+ closed cases across specialties with a Mayo-like mix and some outcome answers.
    assert db.scalar(select(func.count()).select_from(Case).where(Case.status == "closed")) >= 60
    mix = dict(db.execute(select(Opinion.diagnosis_concordance, func.count()).where(Opinion.status == "signed",
                                                                                  Opinion.diagnosis_concordance != "")
                          .group_by(Opinion.diagnosis_concordance)).all())
    assert mix["refined"] > mix["different"] > mix["confirmed"] > 0
    assert db.scalar(select(func.count()).select_from(OutcomeFollowUp).where(OutcomeFollowUp.answered_at.is_not(None))) > 5

    client = demo_login(app, "coordinator@demo.example")
    page = client.get("/figures")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    tables = tables_of(html)
    assert set(tables) == {"diagnosis", "plan", "radpeer", "turnaround", "volume", "workload", "outcome_followed",
                           "outcome_confirmed", "discipline_concordance", "discipline_disagreement",
                           "patient_summary"}
    assert tables["patient_summary"][1][:2] == ["With a summary for the patient", "1"]  # the demo's one
    # The demo's multidisciplinary case with its letter out: three sections, one dissent (demo_boards).
    disagreement = {row[0]: row[1] for row in tables["discipline_disagreement"][1:]}
    assert disagreement["At least one dissent"] == "1" and disagreement["Multidisciplinary cases"] == "1"
    board = client.get("/board").get_data(as_text=True)
    assert "Ines Boardwell" not in board  # the agenda names cases by reference, not patients
    # Sections in progress and awaiting consensus (the third has its letter), and the lung case with its re-read.
    assert board.count('href="/cases/') == 3
    assert html.count("<svg") == 9 and "Mayo 2017" in html and "style=" not in html
    specialties = {row[1] for row in tables["workload"][1:]}
    assert {"Medical oncology", "Radiology", "Radiation oncology", "Surgical oncology"} <= specialties
    diagnosis_total = tables["diagnosis"][-1]
    assert diagnosis_total[0] == "All" and int(diagnosis_total[1]) >= 48

    pdf = client.get("/figures/report.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    pdf_text = re.sub(r"\s+", "", "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages))
    for key, rows in tables.items():
        exported = client.get(f"/figures/{key}.csv")
        assert exported.status_code == 200 and exported.mimetype == "text/csv"
        csv_rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
        assert len(csv_rows) == len(rows), key
        for page_row, csv_row in zip(rows[1:], csv_rows[1:]):
            assert numbers(page_row) == numbers(csv_row), (key, page_row, csv_row)
            for cell in page_row:
                assert re.sub(r"\s+", "", cell) in pdf_text, (key, cell)
    # The filters reach the exports too.
    urgent = tables_of(client.get("/figures?priority=urgent").get_data(as_text=True))["turnaround"]
    urgent_csv = list(csv.reader(io.StringIO(client.get("/figures/turnaround.csv?priority=urgent").get_data(as_text=True))))
    assert numbers(urgent[-1]) == numbers(urgent_csv[-1])
    assert urgent[1][1] == "0" and int(urgent[2][1]) > 0  # no routine cases in an urgent-only view


def test_a_reviewer_sees_their_own_figures_and_nobody_elses(app, db, users, make_case, login_as):
    make_case("closed")  # the reviewer's (breast)
    make_case("closed", cancer_site="gi", by=users["other_referring"])  # routed to other_reviewer
    reviewer = login_as("reviewer")
    page = reviewer.get(f"/figures?reviewer={users['other_reviewer'].id}&period=all")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "My figures" in html
    tables = tables_of(html)
    assert "workload" not in tables and users["other_reviewer"].name not in html
    assert tables["diagnosis"][-1][:2] == ["All", "1"]
    assert tables["turnaround"][-1][1] == "1"
    assert reviewer.get("/figures/workload.csv?period=all").status_code == 404
    own_csv = reviewer.get(f"/figures/diagnosis.csv?period=all&reviewer={users['other_reviewer'].id}").get_data(as_text=True)
    assert list(csv.reader(io.StringIO(own_csv)))[-1][:2] == ["All", "1"]
    assert b"%PDF" == reviewer.get("/figures/report.pdf?period=all").data[:4]
    staff = tables_of(login_as("coordinator").get("/figures?period=all").get_data(as_text=True))
    assert staff["diagnosis"][-1][:2] == ["All", "2"]
    assert {row[0] for row in staff["workload"][1:]} == {users["reviewer"].name, users["other_reviewer"].name}


def test_who_may_open_the_figures_and_bad_filters(app, users, login_as):
    assert login_as("referring").get("/figures").status_code == 403
    assert login_as("referring").get("/figures/diagnosis.csv").status_code == 403
    coordinator = login_as("coordinator")
    for query in ("from=31-12-2026", "period=forever", "priority=stat", "reviewer=abc", "from=2026-12-01&to=2026-01-01"):
        r = coordinator.get(f"/figures?{query}")
        assert r.status_code == 400, query
    assert coordinator.get("/figures/nothing.csv").status_code == 404
    assert login_as("admin").get("/figures").status_code == 200


def test_referrer_answers_the_outcome_follow_up_in_the_portal(app, db, users, make_case, login_as):
    case = make_case("closed")
    at = db.scalar(select(Letter.delivered_at).where(Letter.case_id == case.id))
    referrer = login_as("referring")
    assert referrer.get(f"/cases/{case.id}/outcome").status_code == 404  # not asked yet
    request_due_outcomes(db, days=90, now=at + timedelta(days=90))
    db.commit()
    listing = referrer.get("/outcomes").get_data(as_text=True)
    assert case.reference in listing and "Waiting for you" in listing
    form = referrer.get(f"/cases/{case.id}/outcome")
    assert form.status_code == 200 and b"Which one was confirmed?" in form.data
    assert login_as("other_referring").get(f"/cases/{case.id}/outcome").status_code == 404
    assert login_as("coordinator").get(f"/cases/{case.id}/outcome").status_code == 403  # referrers only
    bad = referrer.post(f"/cases/{case.id}/outcome", data={"recommendation_followed": "fully", "final_diagnosis": "IDC"})
    assert bad.status_code == 400 and b"which opinion" in bad.data
    ok = referrer.post(f"/cases/{case.id}/outcome", data={
        "recommendation_followed": "partly", "final_diagnosis": "IDC, HER2 amplified",
        "confirmed_opinion": "second_opinion", "confirmed_by": "pathology"})
    assert ok.status_code == 302
    db.expire_all()
    follow_up = db.scalar(select(OutcomeFollowUp).where(OutcomeFollowUp.case_id == case.id))
    assert (follow_up.recommendation_followed, follow_up.confirmed_opinion) == ("partly", "second_opinion")
    staff = tables_of(login_as("coordinator").get("/figures?period=all").get_data(as_text=True))
    assert staff["outcome_confirmed"][1][:2] == ["The second opinion", "1"]
