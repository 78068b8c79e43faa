"""axe-core (the PyPI package axe-playwright-python, which bundles axe.min.js) on every main page for each role that
can open it, and no page wider than the viewport on a phone (390 x 844) or a tablet (768 x 1024).

One site and one login per role are shared by the whole module: the portal's database session is a process-wide
registry bound to the newest app, so a site cannot outlive the module whose tests use it.
The pages' markup does not depend on the database, so this module runs on SQLite only: with PORTAL_TEST_DB=postgresql
every other test empties the shared database after itself, which a site kept for the whole module cannot share.
"""
from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from tests.conftest import NOW, TEST_DATABASE, _allow_code_reuse, _close_app, _make_app, case_maker, make_users, totp_now, PASSWORD

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(TEST_DATABASE == "postgresql", reason="markup and layout checks run once, on SQLite")]

SERIOUS = ("serious", "critical")
# Findings of the issue that axe rates below serious: they fail here at any impact, so they stay fixed.
ALWAYS = {"heading-order", "landmark-unique", "landmark-no-duplicate-banner", "landmark-no-duplicate-contentinfo",
          "landmark-no-duplicate-main", "landmark-one-main", "empty-table-header", "scrollable-region-focusable",
          "skip-link", "region", "page-has-heading-one", "svg-img-alt", "role-img-alt"}
PHONE, TABLET = {"width": 390, "height": 844}, {"width": 768, "height": 1024}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A live portal with one case in each state the pages need, and the ids of those cases."""
    from review_portal.db import create_all, session as db_session
    from review_portal.imaging.services import create_ingest, process_ingest, series_of_case
    from review_portal.uploads import UploadedFile
    from tests.imaging_helpers import synth_series

    tmp = tmp_path_factory.mktemp("a11y")
    app = _make_app(f"sqlite:///{tmp / 'test.db'}", tmp)
    create_all(app.extensions["db_engine"])
    db = db_session()
    users = make_users(db)
    make_case = case_maker(db, app.extensions["storage"], users, tmp)
    reviewing = make_case("in_review")
    make_case("assigned", priority="urgent", cancer_site="thoracic")
    make_case("triage", cancer_site="pediatric")
    closed = make_case("closed")
    job = create_ingest(db, app.extensions["storage"], reviewing,
                        [UploadedFile(p.name, p) for p in synth_series(tmp / "series", 3)],
                        by=users["referring"], ip="", now=NOW)
    process_ingest(db, app.extensions["storage"], job.id, now=NOW)
    db.commit()
    [series] = series_of_case(db, reviewing.id)
    ids = {"reviewing": reviewing.id, "closed": closed.id, "series": series.id}
    emails = {key: user.email for key, user in users.items()}
    db.close()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"app": app, "base": f"http://127.0.0.1:{server.server_port}", "ids": ids, "emails": emails}
    server.shutdown()
    thread.join(timeout=10)
    _close_app(app)


@pytest.fixture(scope="module")
def logged_in(site, browser):
    """`logged_in(role)`: a browser context of that role, logged in once for the whole module."""
    contexts = {}

    def _context(role):
        if role not in contexts:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(20000)
            base, email = site["base"], site["emails"][role]
            page.goto(f"{base}/login")
            page.fill("#email", email)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: url.endswith("/cases") or url.endswith("/login/mfa"))
            if page.url.endswith("/login/mfa"):
                _allow_code_reuse(site["app"], email)
                page.fill("#code", totp_now())
                page.click("button[type=submit]")
            page.wait_for_url(f"{base}/cases")
            page.close()
            contexts[role] = context
        return contexts[role]

    yield _context
    for context in contexts.values():
        context.close()


# (page name, path template, roles that can open it)
PAGES = [
    ("worklist", "/cases", ("referring", "reviewer", "coordinator", "admin")),
    ("case page", "/cases/{reviewing}", ("referring", "reviewer", "coordinator")),
    ("opinion page", "/cases/{reviewing}/opinion", ("reviewer",)),
    ("viewer", "/cases/{reviewing}/series/{series}", ("reviewer", "referring")),
    ("dashboard", "/dashboard", ("coordinator", "admin")),
    ("figures", "/figures", ("coordinator", "reviewer")),
    ("audit log", "/admin/audit", ("admin",)),
    ("letters list", "/cases/{closed}/letters", ("referring", "reviewer")),
    ("account security", "/account/security", ("referring", "reviewer", "coordinator", "admin")),
    ("notifications", "/notifications", ("referring", "reviewer", "coordinator")),
]
VISITS = [pytest.param(role, path, id=f"{name}-{role}") for name, path, roles in PAGES for role in roles]


def _open(site, logged_in, role, path, viewport=None):
    page = logged_in(role).new_page()
    page.set_default_timeout(20000)
    if viewport:
        page.set_viewport_size(viewport)
    response = page.goto(site["base"] + path.format(**site["ids"]))
    assert response.status == 200, f"{path} as {role}: {response.status}"
    page.wait_for_load_state("load")
    return page


def serious_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"resultTypes": ["violations"],
                                       "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                                             "best-practice"]}})
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
            for v in results.response["violations"] if v["impact"] in SERIOUS or v["id"] in ALWAYS]


@pytest.mark.parametrize("role,path", VISITS)
def test_no_serious_axe_violation(site, logged_in, role, path):
    page = _open(site, logged_in, role, path)
    try:
        assert serious_violations(page) == []
    finally:
        page.close()


OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
# For the failure message: the elements whose right edge passes the viewport's, innermost first.
OVERFLOWING = """Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .reverse().slice(0, 4).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && e.className.baseVal === undefined ? '.' + e.className.split(' ').join('.') : ''))"""


@pytest.mark.parametrize("viewport", [PHONE, TABLET], ids=["390x844", "768x1024"])
@pytest.mark.parametrize("role,path", VISITS)
def test_no_page_is_wider_than_the_viewport(site, logged_in, role, path, viewport):
    page = _open(site, logged_in, role, path, viewport)
    try:
        assert page.evaluate(OVERFLOW) <= 0, (f"{path} as {role} is wider than {viewport['width']} px: "
                                              f"{page.evaluate(OVERFLOWING)}")
    finally:
        page.close()


def test_axe_check_catches_a_serious_violation(site, logged_in):
    """The check itself can fail: an image without a text alternative is a critical violation."""
    page = _open(site, logged_in, "referring", "/account/security")
    try:
        page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"/static/img/letterhead-logo.svg\">')")
        assert any(v.startswith("image-alt") for v in serious_violations(page))
        page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<div class=\"wide-probe\"></div>')")
        page.evaluate("Object.assign(document.querySelector('.wide-probe').style, {width: '2000px', height: '10px'})")
        assert page.evaluate(OVERFLOW) > 0
    finally:
        page.close()


def test_top_bar_collapses_to_a_menu_on_a_phone(site, logged_in):
    page = _open(site, logged_in, "admin", "/cases", PHONE)
    try:
        toggle, audit_link = page.locator("#menu-toggle"), page.locator("nav.mainnav >> text=Audit log")
        assert toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false"
        assert not audit_link.is_visible()
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true" and audit_link.is_visible()
        # Touch targets: every link and button of the open menu is at least 44 px high.
        heights = page.evaluate("Array.from(document.querySelectorAll('.topbar a, .topbar button'))"
                                ".filter(e => e.offsetParent).map(e => [e.textContent.trim(), e.getBoundingClientRect().height])")
        assert heights and all(h >= 44 for _, h in heights), heights
        page.keyboard.press("Escape")
        assert not audit_link.is_visible()
        page.set_viewport_size({"width": 1280, "height": 800})
        assert not toggle.is_visible() and audit_link.is_visible()
    finally:
        page.close()


def test_skip_link_and_a_visible_focus(site, logged_in):
    page = _open(site, logged_in, "reviewer", "/cases")
    try:
        page.keyboard.press("Tab")
        focused = page.evaluate("[document.activeElement.textContent.trim(), getComputedStyle(document.activeElement).outlineStyle,"
                                " document.activeElement.getBoundingClientRect().top]")
        assert focused[0] == "Skip to main content" and focused[1] != "none" and focused[2] >= 0
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        page.keyboard.press("Tab")
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    finally:
        page.close()


def test_tables_become_cards_on_a_phone(site, logged_in):
    page = _open(site, logged_in, "coordinator", "/cases", PHONE)
    try:
        cell = "document.querySelector('table.cases tbody td[data-label=Status]')"
        assert page.evaluate(f"getComputedStyle({cell}).display") == "block"
        assert page.evaluate(f"getComputedStyle({cell}, '::before').content") == '"Status"'
        assert page.locator("table.cases thead").bounding_box()["height"] <= 1  # left to screen readers
        page.set_viewport_size({"width": 1280, "height": 800})
        assert page.evaluate(f"getComputedStyle({cell}).display") == "table-cell"
    finally:
        page.close()


def test_upload_progress_stays_hidden_until_something_is_sent(site, logged_in):
    page = _open(site, logged_in, "referring", "/referrals/new")
    try:
        assert page.locator("#upload-progress").count() == 1
        assert not page.locator("#upload-progress").is_visible()
        assert not page.get_by_text("Uploading…").is_visible()
    finally:
        page.close()


def test_figure_tables_and_charts_are_reachable_by_keyboard(site, logged_in):
    page = _open(site, logged_in, "coordinator", "/figures")
    try:
        regions = page.locator(".figure-table-wrap[tabindex='0'][role=region]")
        assert regions.count() >= 3 and regions.count() == page.locator(".figure-table-wrap").count()
        regions.first.focus()
        assert page.evaluate("document.activeElement.getAttribute('aria-label')").endswith("the figures as a table")
        names = page.evaluate("Array.from(document.querySelectorAll('svg.chart')).map(s => s.getAttribute('aria-label'))")
        assert names and all(names), names
    finally:
        page.close()
