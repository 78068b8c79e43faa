"""The whole dashboard as a PDF report (WeasyPrint), from the same figures as the page.

Rendered like the letters: plain values into an autoescaped template, and a URL fetcher that serves
only our own static files (letters.render.StaticOnlyURLFetcher), so nothing in the report can make
WeasyPrint read the filesystem or the network.
"""
from __future__ import annotations

from flask import render_template

from review_portal.letters.render import StaticOnlyURLFetcher


def render_report_pdf(dashboard, *, filters_text: list[str], institution: dict, scope: str) -> bytes:
    from weasyprint import HTML

    html = render_template("analytics/report.html", dashboard=dashboard, filters_text=filters_text,
                           institution={k: v for k, v in institution.items() if k != "verification_url"}, scope=scope)
    document = HTML(string=html, base_url=None, url_fetcher=StaticOnlyURLFetcher()).render()
    document.metadata.title = "Second-opinion service: figures"
    document.metadata.description = "Concordance, RADPEER, turnaround, volume, workload and outcomes; " + "; ".join(filters_text)
    return document.write_pdf()
