"""How many letters went out with a summary for the patient, among the completed cases in view."""
from __future__ import annotations

from sqlalchemy.orm import Session

from review_portal.analytics import charts
from review_portal.analytics.services import CaseFacts, Column, Figure, display
from review_portal.analytics.stats import share, wilson_interval
from review_portal.letters.summary import cases_with_signed_summary


def patient_summary_figure(db: Session, facts: list[CaseFacts]) -> Figure:
    ids = [c.case_id for c in facts]
    with_summary = cases_with_signed_summary(db, ids)
    n, k = len(ids), len(with_summary)
    fig = Figure(key="patient_summary", title="Letters with a summary for the patient",
                 columns=[Column("Letter"), Column("Cases", "int"), Column("Share", "pct"), Column("95% CI", "ci")],
                 note="Completed cases whose letter was delivered with a signed plain-language summary for the patient "
                      "(any version).")
    fig.rows = [["With a summary for the patient", k, share(k, n), wilson_interval(k, n)],
                ["Without", n - k, share(n - k, n), wilson_interval(n - k, n)],
                ["All", n, share(n, n), None]]
    fig.chart = charts.hbar_chart(
        [charts.Bar(row[0], (100 * row[2] if n else None,), ((100 * row[3][0], 100 * row[3][1]) if n else None,))
         for row in fig.rows[:2]], [charts.Series("Letters", "primary")], title=fig.title, unit="%", max_value=100)
    if n:
        fig.headline = f"{k} of {n} letters ({display(share(k, n), 'pct')}) included a summary for the patient."
    return fig
