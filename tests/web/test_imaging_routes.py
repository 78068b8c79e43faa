"""Viewer routes, adding scans and key images through the test client, per role."""
from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.imaging.services import series_of_case
from tests.imaging_helpers import synth_series


@pytest.fixture
def ct_case(make_case, login_as, tmp_path, db):
    case = make_case("assigned")
    client = login_as("referring")
    files = [(open(p, "rb"), p.name) for p in synth_series(tmp_path / "s", 5)]
    r = client.post(f"/cases/{case.id}/scans", data={"scans": files}, headers={"X-Requested-With": "fetch"})
    assert r.status_code == 200, r.json
    assert r.json["ingest"]["accepted"] == 5
    [series] = series_of_case(db, case.id)
    return case, series


@pytest.mark.parametrize("role, status", [
    ("reviewer", 200), ("referring", 200), ("coordinator", 200), ("other_reviewer", 404), ("other_referring", 404),
])
def test_who_sees_the_viewer_and_slices(ct_case, login_as, role, status):
    case, series = ct_case
    c = login_as(role)
    for url in (f"/cases/{case.id}/viewer", f"/cases/{case.id}/series/{series.id}", f"/cases/{case.id}/series/{series.id}.json",
                f"/cases/{case.id}/series/{series.id}/slices/0.jpg", f"/cases/{case.id}/series/{series.id}/thumbnail.png",
                f"/cases/{case.id}/series/{series.id}/slices/0/header.json"):
        assert c.get(url).status_code == status, url


def test_rendered_slices_carry_etags_and_windows(ct_case, login_as):
    case, series = ct_case
    c = login_as("reviewer")
    base = f"/cases/{case.id}/series/{series.id}/slices/2"
    png = c.get(base + ".png?wc=40&ww=400")
    jpg = c.get(base + ".jpg?wc=40&ww=400")
    assert png.mimetype == "image/png" and Image.open(io.BytesIO(png.data)).format == "PNG"
    assert jpg.mimetype == "image/jpeg" and Image.open(io.BytesIO(jpg.data)).format == "JPEG"
    assert png.headers["Cache-Control"] == "no-store" and png.headers["ETag"] != jpg.headers["ETag"]  # patient images: never kept
    again = c.get(base + ".png?wc=40&ww=400", headers={"If-None-Match": png.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    lung = c.get(base + ".png?wc=-600&ww=1500")
    assert lung.data != png.data and lung.headers["ETag"] != png.headers["ETag"]
    for bad in ("?wc=40", "?wc=40&ww=0", "?wc=abc&ww=4", "?wc=1e9&ww=4"):
        assert c.get(base + ".png" + bad).status_code == 400, bad
    assert c.get(f"/cases/{case.id}/series/{series.id}/slices/99.png").status_code == 404
    info = c.get(f"/cases/{case.id}/series/{series.id}.json").json
    assert info["count"] == 5 and [s["position"] for s in info["slices"]] == [0.0, 2.5, 5.0, 7.5, 10.0]


def test_add_scans_permissions_and_ingest_progress(ct_case, login_as, tmp_path):
    case, _ = ct_case
    files = lambda: [(open(p, "rb"), p.name) for p in synth_series(tmp_path / "more", 1)]  # noqa: E731
    assert login_as("reviewer").post(f"/cases/{case.id}/scans", data={"scans": files()}).status_code == 403
    assert login_as("other_referring").post(f"/cases/{case.id}/scans", data={"scans": files()}).status_code == 404
    c = login_as("referring")
    assert c.post(f"/cases/{case.id}/scans", data={}, headers={"X-Requested-With": "fetch"}).status_code == 400
    r = c.post(f"/cases/{case.id}/scans", data={"scans": [(io.BytesIO(b"PK\x03\x04junk"), "broken.zip")]})
    assert r.status_code == 302
    page = c.get(r.headers["Location"])
    assert b"broken.zip" in page.data and b"Finished" in page.data
    progress = c.get(r.headers["Location"], headers={"Accept": "application/json"}).json
    assert progress["status"] == "done" and progress["rejected"][0]["name"] == "broken.zip"
    assert login_as("other_referring").get(r.headers["Location"]).status_code == 404


def _accept_offer(client, db, case):
    """The routed reviewer accepts the offer through the worklist button; only then is the case theirs to work on."""
    from review_portal.assignment.models import Assignment

    offer = db.scalar(select(Assignment.id).where(Assignment.case_id == case.id, Assignment.status == "offered"))
    r = client.post(f"/cases/{case.id}/assignments/{offer}/accept")
    assert r.status_code == 302, r.data


def test_key_image_marking_through_routes(ct_case, login_as, db, users):
    case, series = ct_case
    fetch = {"X-Requested-With": "fetch"}
    form = {"series_id": series.id, "slice_index": 1, "window_center": -600, "window_width": 1500, "caption": "RUL nodule"}
    assert login_as("referring").post(f"/cases/{case.id}/key-images", data=form, headers=fetch).status_code == 403
    c = login_as("reviewer")
    # Offered is not yet accepted: the reviewer may look, but marks nothing until the review is theirs.
    assert c.post(f"/cases/{case.id}/key-images", data=form, headers=fetch).status_code == 403
    _accept_offer(c, db, case)
    r = c.post(f"/cases/{case.id}/key-images", data=form, headers=fetch)
    assert r.status_code == 200, r.json
    key = r.json["key_image"]
    assert key["window_label"] == "W 1500 / L -600"
    assert Image.open(io.BytesIO(c.get(key["image_url"]).data)).format == "PNG"
    assert c.post(f"/cases/{case.id}/key-images", data={**form, "window_width": 0}, headers=fetch).status_code == 400
    assert c.post(f"/cases/{case.id}/key-images", data={**form, "slice_index": 50}, headers=fetch).status_code == 400
    assert c.get(f"/cases/{case.id}/series/{series.id}.json").json["key_images"][0]["caption"] == "RUL nodule"
    assert c.post(key["unmark_url"], headers=fetch).status_code == 200
    assert c.get(f"/cases/{case.id}/series/{series.id}.json").json["key_images"] == []
    actions = list(db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)))
    assert "key_image.marked" in actions and "key_image.unmarked" in actions


def test_opinion_page_embeds_the_viewer(ct_case, login_as, db):
    case, _ = ct_case
    c = login_as("reviewer")
    _accept_offer(c, db, case)
    page = c.get(f"/cases/{case.id}/opinion")
    assert page.status_code == 200
    assert b'class="dicom-viewer"' in page.data and b"js/viewer.js" in page.data
