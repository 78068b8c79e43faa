"""The coordinator opens the figures dashboard in chromium, reads a chart beside its table and filters it."""
import pytest

from tests.browser.test_loop_in_browser import login

pytestmark = pytest.mark.browser


def test_coordinator_opens_the_figures_and_filters_them(app, live_server, page, users, make_case):
    make_case("closed")
    make_case("closed", priority="urgent", cancer_site="thoracic")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    login(page, live_server, users["coordinator"].email, app)
    page.click("nav.mainnav >> text=Figures")
    page.wait_for_url(f"{live_server}/figures")
    assert page.locator("h1").inner_text() == "Service figures"
    chart = page.locator("#figure-diagnosis svg.chart")
    assert chart.is_visible() and chart.bounding_box()["width"] > 200
    assert page.locator("#figure-diagnosis .chart-reference").count() == 4  # a Mayo tick per category, and the legend
    total = page.locator("#figure-diagnosis table tr.total td").all_inner_texts()
    assert total[:2] == ["All", "2"]
    page.select_option("#period", "all")
    page.select_option("#priority", "urgent")
    page.click("#apply-filters")
    page.wait_for_url("**/figures?*priority=urgent*")
    assert page.locator("#figure-diagnosis table tr.total td").all_inner_texts()[:2] == ["All", "1"]
    assert "Urgent" in page.locator("#figures-scope").inner_text()
    with page.expect_download() as download:
        page.click("#figure-turnaround >> text=CSV")
    assert download.value.suggested_filename.startswith("turnaround-")
    assert not [e for e in errors if "Content Security Policy" in e], errors
