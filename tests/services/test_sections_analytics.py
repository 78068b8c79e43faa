"""Figures of the multidisciplinary opinions: concordance by discipline and how often the disciplines disagreed."""
from datetime import UTC, datetime

import pytest

from review_portal.analytics import services
from review_portal.analytics.stats import wilson_interval
from review_portal.deadlines import policy_from_config
from tests.board_helpers import sign_board

LATER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def board(app, db, storage, make_case, users, monkeypatch):
    # The letter's content has its own tests (test_sections_letter): skip WeasyPrint here.
    monkeypatch.setattr("review_portal.letters.render.render_letter_pdf", lambda context, **kw: b"%PDF-1.7 test")
    return sign_board(db, storage, make_case, users)


def test_concordance_by_discipline_and_disagreement(app, db, users, board, login_as):
    f = services.parse_filters({"period": "all"}, user=users["coordinator"], now=LATER)
    dash = services.build_dashboard(db, f, policy=policy_from_config(app.config), now=LATER)
    by_discipline = {row[0]: row[1:] for row in dash.figure("discipline_concordance").rows}
    # RADPEER 2a is a discrepancy; radiation oncology would modify the plan; medical oncology agrees.
    assert by_discipline == {"Medical oncology": [1, 1, 1.0, wilson_interval(1, 1)],
                             "Radiation oncology": [1, 0, 0.0, wilson_interval(0, 1)],
                             "Radiology": [1, 0, 0.0, wilson_interval(0, 1)]}
    disagreement = {row[0]: row[1] for row in dash.figure("discipline_disagreement").rows}
    assert disagreement == {"Multidisciplinary cases": 1, "At least one dissent": 1,
                            "Sections of differing concordance": 1}
    page = login_as("coordinator").get("/figures?period=all").get_data(as_text=True)
    assert "Concordance by discipline" in page and "How often the disciplines disagreed" in page


def test_a_single_discipline_service_shows_empty_board_figures(app, db, users, make_case):
    make_case("letter_delivered")
    f = services.parse_filters({"period": "all"}, user=users["coordinator"], now=LATER)
    dash = services.build_dashboard(db, f, policy=policy_from_config(app.config), now=LATER)
    assert dash.figure("discipline_concordance").rows == []
    assert dash.figure("discipline_disagreement").rows[0] == ["Multidisciplinary cases", 0, None, None]
