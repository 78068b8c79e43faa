"""The figures count how many letters went out with a summary for the patient."""
from datetime import datetime, timedelta, timezone

from review_portal.analytics import services
from review_portal.deadlines import policy_from_config
from review_portal.letters.summary import SummaryDraft, save_summary, sign_summary, start_summary
from tests.conftest import INSTITUTION, NOW, PASSWORD

LATER = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
CTX = {"ip": "127.0.0.1"}


def test_letters_with_a_signed_summary_are_counted(app, db, storage, make_case, users, login_as):
    with_summary = make_case("letter_delivered")
    draft_only = make_case("letter_delivered", cancer_site="thoracic")
    make_case("letter_delivered", cancer_site="gi")
    lead = users["reviewer"]
    at = NOW + timedelta(days=1)
    for case in (with_summary, draft_only):
        start_summary(db, case, by=case.reviewer, now=at, **CTX)
    save_summary(db, with_summary, SummaryDraft("We read your scans.", "The team agrees.", "Keep the plan."),
                 based_on_version=None, by=lead, now=at, **CTX)
    sign_summary(db, storage, with_summary, password=PASSWORD, attested=True, based_on_version=None,
                 institution=INSTITUTION, by=lead, now=at, **CTX)
    db.commit()

    f = services.parse_filters({"period": "all"}, user=users["coordinator"], now=LATER)
    fig = services.build_dashboard(db, f, policy=policy_from_config(app.config), now=LATER).figure("patient_summary")
    assert [row[:2] for row in fig.rows] == [["With a summary for the patient", 1], ["Without", 2], ["All", 3]]
    assert fig.headline.startswith("1 of 3 letters (33.3%)")
    assert "With a summary for the patient,1,33.3" in services.figure_csv(fig)
    page = login_as("coordinator").get("/figures?period=all").get_data(as_text=True)
    assert "Letters with a summary for the patient" in page and "1 of 3 letters" in page
