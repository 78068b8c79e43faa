"""Images cost what they cost to render: a slice asked again at the same window is served from the host's render
cache without decoding; a client that still holds an image (If-None-Match) is answered 304 after the access check
and the audit, without the stored image or the original being read."""
from __future__ import annotations

import io
import os
import time

import pytest
from PIL import Image
from sqlalchemy import func, select

from review_portal.assignment.models import Assignment
from review_portal.audit.models import AuditEvent
from review_portal.imaging import decoding, render_cache, rendering, sandboxed
from review_portal.imaging.services import series_of_case
from tests.imaging_helpers import synth_series


@pytest.fixture
def ct_case(make_case, login_as, tmp_path, db):
    case = make_case("assigned")
    files = [(open(p, "rb"), p.name) for p in synth_series(tmp_path / "s", 5)]
    r = login_as("referring").post(f"/cases/{case.id}/scans", data={"scans": files},
                                   headers={"X-Requested-With": "fetch"})
    assert r.status_code == 200 and r.json["ingest"]["accepted"] == 5, r.json
    [series] = series_of_case(db, case.id)
    return case, series


def _accept_offer(client, db, case):
    offer = db.scalar(select(Assignment.id).where(Assignment.case_id == case.id, Assignment.status == "offered"))
    assert client.post(f"/cases/{case.id}/assignments/{offer}/accept").status_code == 302


class Counter:
    """Counts calls to a real function and still runs it."""

    def __init__(self, monkeypatch, owner, name):
        self.calls = 0
        real = getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def _views(db, case_id: int) -> int:
    return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.case_id == case_id))


def test_a_repeated_slice_and_window_is_not_decoded_again(ct_case, login_as, monkeypatch, storage):
    case, series = ct_case
    sandboxed_renders = Counter(monkeypatch, sandboxed, "render_frame")
    in_process_renders = Counter(monkeypatch, rendering, "render_frame")
    decodes = Counter(monkeypatch, decoding, "_read_native_frame")
    url = f"/cases/{case.id}/series/{series.id}/slices/3.png?wc=40&ww=400"
    first = login_as("reviewer").get(url)
    assert first.status_code == 200 and sandboxed_renders.calls == 1
    before = (in_process_renders.calls, decodes.calls)
    # Another user, another session, no If-None-Match: the bytes come from the cache, nothing is decoded.
    again = login_as("coordinator").get(url)
    assert again.status_code == 200 and again.data == first.data
    assert sandboxed_renders.calls == 1 and (in_process_renders.calls, decodes.calls) == before
    assert list((storage.host_area(render_cache.AREA)).glob("*/*")), "the rendering is kept on disk"
    # Another window, or the other format, is another image.
    lung = login_as("reviewer").get(f"/cases/{case.id}/series/{series.id}/slices/3.png?wc=-600&ww=1500")
    assert lung.status_code == 200 and lung.data != first.data and sandboxed_renders.calls == 2
    jpg = login_as("reviewer").get(f"/cases/{case.id}/series/{series.id}/slices/3.jpg?wc=40&ww=400")
    assert Image.open(io.BytesIO(jpg.data)).format == "JPEG" and sandboxed_renders.calls == 3
    # Access is checked before the cache: someone outside the case gets nothing from it.
    assert login_as("other_reviewer").get(url).status_code == 404


def test_the_cache_is_shared_through_the_disk_and_bounded(app, storage, tmp_path):
    # Two caches on one directory stand for two workers of one host.
    one = render_cache.RenderCache(tmp_path / "rc", 16 * 1000)
    two = render_cache.RenderCache(tmp_path / "rc", 16 * 1000)
    one.put("a-0-None-None-png", b"x" * 1000)
    assert two.get("a-0-None-None-png") == b"x" * 1000 and two.get("b-0-None-None-png") is None
    old = time.time() - 100
    for n in range(15):
        one.put(f"k{n}", bytes([n]) * 1000)
        os.utime(one._path(f"k{n}"), (old + n, old + n))
    os.utime(one._path("a-0-None-None-png"), (old - 50, old - 50))
    assert two.get("a-0-None-None-png") is not None  # a hit makes it the most recently used
    one.put("k15", b"z" * 1000)  # 17 kB > 16 kB: the least recently used go, down to 90%
    total, files = one.usage()
    assert total <= 16 * 1000 * 0.9 and len(files) == 14
    assert one.get("a-0-None-None-png") is not None and one.get("k15") is not None
    assert one.get("k0") is None and one.get("k1") is None
    assert not list((tmp_path / "rc").glob("*/.part-*")), "no half-written file is left behind"
    off = render_cache.RenderCache(tmp_path / "off", 0)
    off.put("k", b"data")
    assert off.get("k") is None


def test_the_decoded_frame_cache_is_sized_from_config(app, storage):
    app.config["FRAME_CACHE_MB"] = 3
    app.extensions.pop("imaging_render_cache", None)
    render_cache.cache_of(app, storage)
    assert decoding._FRAME_CACHE_BYTES == 3 * 1024 * 1024


def test_conditional_thumbnail_and_key_image_answer_304_without_reading_storage(ct_case, login_as, db, storage,
                                                                                 monkeypatch):
    case, series = ct_case
    c = login_as("reviewer")
    _accept_offer(c, db, case)
    r = c.post(f"/cases/{case.id}/key-images", headers={"X-Requested-With": "fetch"},
               data={"series_id": series.id, "slice_index": 1, "window_center": 40, "window_width": 400})
    key_url = r.json["key_image"]["image_url"]
    thumb_url = f"/cases/{case.id}/series/{series.id}/thumbnail.png"
    etags = {url: c.get(url).headers["ETag"] for url in (key_url, thumb_url)}
    reads = Counter(monkeypatch, storage, "read_bytes")
    paths = Counter(monkeypatch, storage, "local_path")
    for url, etag in etags.items():
        events = _views(db, case.id)
        other_session = login_as("reviewer")  # a new session: its image view is a new audit event
        held = other_session.get(url, headers={"If-None-Match": etag})
        assert held.status_code == 304 and held.data == b"", url
        assert _views(db, case.id) == events + 1, f"{url}: the 304 is an audited view"
    assert reads.calls == 0 and paths.calls == 0
    # Someone outside the case is refused before any comparison.
    for url, etag in etags.items():
        assert login_as("other_reviewer").get(url, headers={"If-None-Match": etag}).status_code == 404
    # A stale ETag gets the image.
    fresh = c.get(thumb_url, headers={"If-None-Match": '"not-it"'})
    assert fresh.status_code == 200 and Image.open(io.BytesIO(fresh.data)).format == "PNG"


@pytest.mark.parametrize("accept, fmt", [("image/png", "png"), ("image/jpeg", "jpeg")])
def test_dicomweb_rendered_answers_304_without_rendering(ct_case, login_as, db, monkeypatch, accept, fmt):
    case, series = ct_case
    inst = series.instances[0]
    url = (f"/dicomweb/cases/{case.id}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
           f"/instances/{inst.sop_instance_uid}/frames/1/rendered?window=40,400")
    c = login_as("reviewer")
    first = c.get(url, headers={"Accept": accept})
    assert first.status_code == 200 and first.mimetype == f"image/{fmt}"
    renders = Counter(monkeypatch, sandboxed, "render_frame")
    cached = Counter(monkeypatch, render_cache, "rendered")
    events = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "dicomweb.rendered"))
    held = c.get(url, headers={"Accept": accept, "If-None-Match": first.headers["ETag"]})
    assert held.status_code == 304 and held.data == b""
    assert renders.calls == 0 and cached.calls == 0
    assert db.scalar(select(func.count()).select_from(AuditEvent)
                     .where(AuditEvent.action == "dicomweb.rendered")) == events + 1
    again = c.get(url, headers={"Accept": accept})  # no ETag held: served from the render cache, not rendered
    assert again.data == first.data and renders.calls == 0 and cached.calls == 1
    assert login_as("other_reviewer").get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 404


def test_one_rendering_has_one_cache_key_whichever_door_asks():
    key = render_cache.cache_key
    # The viewer's slice (frame index 0) and DICOMweb's frame 1 of the same file and window are one rendering...
    assert key("k", 0, 40, 400, "jpg") == key("k", 0, 40.0, 400.0, "jpeg")
    # ...and nothing else shares it: another frame, window, format or file.
    others = {key("k", 1, 40, 400, "png"), key("k", 0, 40, 400, "png"), key("k", 0, None, None, "png"),
              key("k", 0, 40, 401, "png"), key("j", 0, 40, 400, "png"), key("k", 0, 4, 0.4e3, "png")}
    assert len(others) == 6
