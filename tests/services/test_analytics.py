"""Dashboard figures from real cases: turnaround without holds, concordance, filters, a reviewer's own view."""
from datetime import datetime, timedelta, timezone

import pytest

from review_portal.analytics import services
from review_portal.analytics.stats import wilson_interval
from review_portal.deadlines import policy_from_config
from review_portal.errors import InvalidInput
from review_portal.opinions.models import RADPEER
from tests.analytics_helpers import completed_case

MON = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
LATER = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def cases(app, db, storage, users, monkeypatch):
    # The letters' content plays no part in the figures and has its own tests: skip WeasyPrint here.
    monkeypatch.setattr("review_portal.letters.render.render_letter_pdf", lambda context, **kw: b"%PDF-1.7 test letter")
    # 1) Mon 09:00 → Thu 09:00, waiting on the referrer Mon 12:00 → Wed 12:00: 3 business days less 2 held = 1.0.
    held = completed_case(app, db, storage, users, submitted=MON, signed=MON + timedelta(days=3),
                          hold=(MON + timedelta(hours=3), MON + timedelta(days=2, hours=3)),
                          diagnosis="confirmed", plan="agree")
    # 2) Fri 09:00 → next Fri 09:00 over a weekend: 5 business days, on time for routine (target 5).
    weekend = completed_case(app, db, storage, users, submitted=MON + timedelta(days=4),
                             signed=MON + timedelta(days=11), diagnosis="different", plan="different")
    # 3) Urgent, Mon → Thu: 3 business days, late for urgent (target 2); thoracic.
    late = completed_case(app, db, storage, users, submitted=MON + timedelta(days=7), signed=MON + timedelta(days=10),
                          priority="urgent", cancer_site="thoracic")
    # 4) A radiology re-read with a RADPEER 2b.
    read = completed_case(app, db, storage, users, submitted=MON + timedelta(days=7),
                          signed=MON + timedelta(days=8), radpeer="2b")
    return {"held": held, "weekend": weekend, "late": late, "read": read}


def _dashboard(app, db, user, **args):
    f = services.parse_filters({"period": "all", **args}, user=user, now=LATER)
    return services.build_dashboard(db, f, policy=policy_from_config(app.config), now=LATER)


def test_turnaround_counts_business_days_and_excludes_holds(app, db, users, cases):
    f = services.parse_filters({"period": "all"}, user=users["coordinator"], now=LATER)
    facts = {c.case_id: c for c in services.completed_cases(db, f, policy_from_config(app.config))}
    assert facts[cases["held"].id].turnaround_days == pytest.approx(1.0)
    assert facts[cases["weekend"].id].turnaround_days == pytest.approx(5.0)
    assert facts[cases["weekend"].id].on_time
    assert facts[cases["late"].id].turnaround_days == pytest.approx(3.0)
    assert not facts[cases["late"].id].on_time

    fig = _dashboard(app, db, users["coordinator"]).figure("turnaround")
    routine, urgent, everyone = fig.rows
    assert routine[:6] == ["Routine", 3, pytest.approx(1.0), pytest.approx(4.2), 5, 3]
    assert urgent[:6] == ["Urgent", 1, pytest.approx(3.0), pytest.approx(3.0), 2, 0]
    assert everyone[1] == 4 and everyone[5] == 3 and everyone[7] == wilson_interval(3, 4)


def test_concordance_and_radpeer_with_intervals_and_the_mayo_reference(app, db, users, cases):
    dash = _dashboard(app, db, users["coordinator"])
    diagnosis = {row[0]: row for row in dash.figure("diagnosis").rows}
    assert [diagnosis[k][1] for k in ("Confirmed", "Refined", "Different", "All")] == [1, 1, 1, 3]
    assert diagnosis["Refined"][3] == wilson_interval(1, 3)
    assert diagnosis["Refined"][4] == pytest.approx(188 / 286)
    plan = {row[0]: row[1] for row in dash.figure("plan").rows}
    assert plan == {"Agree": 1, "Modify": 1, "Different": 1, "All": 3}
    radpeer = {row[0]: row[1] for row in dash.figure("radpeer").rows}
    assert radpeer[services.RADPEER_SHORT["2b"]] == 1 and radpeer["All"] == 1
    assert set(services.RADPEER_SHORT) == set(RADPEER)
    assert "<svg" in dash.figure("diagnosis").chart and "style=" not in dash.figure("diagnosis").chart


def test_filters_narrow_every_figure(app, db, users, cases):
    urgent = _dashboard(app, db, users["coordinator"], priority="urgent")
    assert urgent.completed == 1 and urgent.figure("diagnosis").rows[-1][1] == 1
    thoracic = _dashboard(app, db, users["coordinator"], cancer_site="thoracic")
    assert thoracic.completed == 1
    nobody = _dashboard(app, db, users["coordinator"], institution=str(users["other_referring"].institution_id))
    assert nobody.completed == 0 and nobody.figure("diagnosis").rows[0][2] is None
    radiology = _dashboard(app, db, users["coordinator"], specialty="radiology")
    assert radiology.completed == 1 and radiology.figure("radpeer").rows[-1][1] == 1
    window = _dashboard(app, db, users["coordinator"], **{"from": "2026-11-09", "to": "2026-11-12"})
    assert window.completed == 2  # the weekend case (delivered 13 Nov) and the first one (5 Nov) are outside
    weeks = window.figure("volume").rows
    assert weeks[-1] == ["Total", 2, 2]
    with pytest.raises(InvalidInput):
        services.parse_filters({"from": "2026-13-01"}, user=users["coordinator"], now=LATER)
    with pytest.raises(InvalidInput):
        services.parse_filters({"from": "2026-12-01", "to": "2026-11-01"}, user=users["coordinator"], now=LATER)
    with pytest.raises(InvalidInput):
        services.parse_filters({"priority": "stat"}, user=users["coordinator"], now=LATER)


def test_a_reviewer_gets_their_own_figures_whatever_the_query_says(app, db, users, cases):
    mine = _dashboard(app, db, users["reviewer"], reviewer=str(users["radiologist"].id))
    assert mine.filters.reviewer_id == users["reviewer"].id and mine.filters.own_only
    assert mine.completed == 3  # the three oncology opinions, not the radiologist's read
    assert "workload" not in mine.keys
    theirs = _dashboard(app, db, users["radiologist"])
    assert theirs.completed == 1 and theirs.figure("radpeer").rows[-1][1] == 1
    assert theirs.figure("diagnosis").rows[-1][1] == 0
    staff = _dashboard(app, db, users["coordinator"])
    workload = {row[0]: row for row in staff.figure("workload").rows}
    assert workload[users["reviewer"].name][2] == 3 and workload[users["radiologist"].name][2] == 1


def test_csv_cells_round_like_the_page(app, db, users, cases):
    fig = _dashboard(app, db, users["coordinator"]).figure("diagnosis")
    header, *rows = services.figure_csv(fig).splitlines()
    assert header == "Category,Cases,Share (%),95% CI low (%),95% CI high (%),Mayo 2017 (n=286) (%)"
    lo, hi = wilson_interval(1, 3)
    assert rows[0] == f"Confirmed,1,33.3,{100 * lo:.1f},{100 * hi:.1f},12.6"
    assert fig.display_rows()[0] == ["Confirmed", "1", "33.3%", f"{100 * lo:.1f}–{100 * hi:.1f}%", "12.6%"]
