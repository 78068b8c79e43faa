"""At 1366 px the administrator's audit table stays in its column: the Detail column is not under the sidebar."""
from __future__ import annotations

from review_portal.audit.services import record
from tests.browser.test_loop_in_browser import login
from tests.conftest import NOW


def test_audit_table_keeps_clear_of_the_sidebar_at_1366(app, live_server, page, db, users, make_case):
    case = make_case("in_review", cancer_site="thoracic")
    # Long values as the trail really has them: a user agent, a session key, a query string without spaces.
    for n in range(3):
        record(db, action="images.viewed", by=users["reviewer"], ip="2001:db8:85a3:0000:0000:8a2e:0370:7334", now=NOW,
               case=case, object_type="series", object_id=n,
               detail="session " + "f3a9c1" * 12 + "; first read: slice 0; covers this series' images for 15 min",
               user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
    record(db, action="audit.searched", by=users["admin"], ip="127.0.0.1", now=NOW, object_type="audit",
           detail="patient=&user=reviewer%40test.example&case=" + case.reference + "&action=images.viewed" * 8)
    db.commit()
    page.set_viewport_size({"width": 1366, "height": 768})
    login(page, live_server, users["admin"].email, app)
    page.goto(f"{live_server}/admin/audit?action=")
    side = page.locator("aside.col-side").bounding_box()
    main = page.locator(".col-main").bounding_box()
    detail = page.locator(".audit-results th", has_text="Detail").bounding_box()
    assert detail["width"] > 80
    assert detail["x"] + detail["width"] <= side["x"] + 1, (detail, side)
    table = page.locator(".audit-results").bounding_box()
    assert table["x"] + table["width"] <= main["x"] + main["width"] + 1, (table, main)
    assert page.locator(".audit-results td", has_text="first read: slice 0").first.is_visible()
