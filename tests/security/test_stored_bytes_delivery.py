"""What leaves the portal is what was stored, and nothing more.

* Class 5: every way a DICOM file leaves (WADO-RS retrieve of an instance, series or study; the de-identified
  export) sends the 128-byte preamble as zeros, the rest byte for byte, while the original keeps its preamble.
* Class 8: a flipped byte in a stored letter, document or DICOM instance is never delivered as valid: letters and
  documents are refused (503, a clear message, an ERROR log line, an audit row); a DICOM stream breaks; cached
  derivatives (thumbnail, key image) are rebuilt; `flask storage-scrub` names what is corrupt or missing.
Hostile files are built in code (tests/unit/test_dicom_delivery.py has the builders).
"""
from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.errors import INTEGRITY_MESSAGE, StoredFileCorrupt
from review_portal.imaging.models import Instance, KeyImage, Series, Study
from review_portal.letters.models import Letter
from review_portal.uploads import UploadedFile
from review_portal.workflow.referrals import submit_referral
from tests.conftest import NOW, TURNAROUND, referral
from tests.unit.test_dicom_delivery import POLYGLOT_PREAMBLE, polyglot_bytes

ZEROS = bytes(128)
STREAM_CHUNK = 4096  # small, so a DICOM stream has many chunks and must break in the middle


@pytest.fixture
def app_overrides():
    return {"DICOM_STREAM_CHUNK_BYTES": STREAM_CHUNK}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def poly_case(db, storage, users, tmp_path):
    """A referral whose one scan hides a TIFF/HTML/script payload in its preamble, with one PDF document."""
    scan, doc = tmp_path / "poly.dcm", tmp_path / "report.pdf"
    scan.write_bytes(polyglot_bytes())
    doc.write_bytes(PDF)
    case, _ = submit_referral(db, storage, referral(), documents=[UploadedFile("report.pdf", doc)],
                              scans=[UploadedFile("poly.dcm", scan)], by=users["referring"], ip="127.0.0.1", now=NOW,
                              turnaround_days=TURNAROUND)
    db.commit()
    inst = db.scalar(select(Instance).join(Series).join(Study).where(Study.case_id == case.id))
    series, study = inst.series, inst.series.study
    base = f"/dicomweb/cases/{case.id}/studies/{study.study_instance_uid}"
    # Plain values: each request ends the session these rows were loaded in.
    return SimpleNamespace(
        id=case.id, blob_key=inst.blob_key, series_id=series.id,
        doc_id=case.documents[0].id, doc_key=case.documents[0].sha256,
        urls={"study": base, "series": f"{base}/series/{series.series_instance_uid}",
              "instance": f"{base}/series/{series.series_instance_uid}/instances/{inst.sop_instance_uid}"})


def _parts(response) -> list[bytes]:
    boundary = response.headers["Content-Type"].rsplit("boundary=", 1)[1].encode()
    body = response.data
    assert body.endswith(b"--" + boundary + b"--\r\n")
    chunks = body.split(b"--" + boundary)[1:-1]
    return [c.split(b"\r\n\r\n", 1)[1][:-2] for c in chunks]


def _flip(storage, key: str, at: int = -40) -> None:
    path = storage.local_path(key)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _integrity_events(db):
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == "storage.integrity_failed")))


# ------------------------------------------------------------------ class 5: the preamble on every way out


def test_every_way_out_sends_a_zero_preamble_and_the_rest_byte_for_byte(poly_case, storage, login_as):
    case = poly_case
    stored = storage.read_bytes(case.blob_key)
    assert stored[:128] == POLYGLOT_PREAMBLE  # the original is kept as sent (backups hold it byte for byte)
    client = login_as("reviewer")
    for level, url in case.urls.items():
        r = client.get(url, buffered=True)
        assert r.status_code == 200, level
        [part] = _parts(r)
        assert part[:128] == ZEROS, level
        assert part[128:] == stored[128:], level
    # The de-identified export (coordinators): the preamble is zeros there too, whatever it held.
    r = login_as("coordinator").post(f"/cases/{case.id}/export", data={"purpose": "y"})
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.data)) as zf:
        [name] = [n for n in zf.namelist() if n.endswith(".dcm")]
        exported = zf.read(name)
    assert exported[:132] == ZEROS + b"DICM"
    assert b"<script>" not in exported and b"II*\x00" not in exported[:132]


# ------------------------------------------------------------------ class 8: stored bytes that changed


def test_a_flipped_byte_in_a_letter_is_refused_logged_and_audited(app, db, storage, make_case, login_as, caplog):
    from review_portal.api.services import create_token
    from review_portal.auth.models import User
    from review_portal.clock import utcnow

    case = make_case("letter_delivered")
    letter = db.scalar(select(Letter).where(Letter.case_id == case.id))
    _flip(storage, letter.blob_key, 200)
    caplog.set_level(logging.ERROR)
    client = login_as("referring")
    r = client.get(f"/cases/{case.id}/letters/{letter.id}.pdf")
    assert r.status_code == 503 and b"%PDF" not in r.data
    assert INTEGRITY_MESSAGE.encode() in r.data.replace(b"&#39;", b"'")
    assert r.headers["Cache-Control"] == "no-store"
    r = client.get(f"/cases/{case.id}/fhir/DiagnosticReport.json", headers={"Accept": "application/json"})
    assert r.status_code == 503 and r.get_json()["error"] == INTEGRITY_MESSAGE
    user = db.scalar(select(User).where(User.email == "referring@test.example"))
    token = create_token(db, name="his", scope="read", days=7, by=user, ip="", now=utcnow())[1]
    db.commit()
    for path in (f"/api/v1/referrals/{case.id}/letter", f"/api/v1/referrals/{case.id}/fhir/DiagnosticReport"):
        r = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503 and r.is_json and b"%PDF" not in r.data, path
    assert any(rec.levelno == logging.ERROR and letter.blob_key in rec.getMessage() for rec in caplog.records)
    events = _integrity_events(db)
    assert len(events) == 4
    assert all(e.object_id == letter.blob_key and e.case_id == case.id and e.flagged for e in events)
    assert events[0].actor_email == "referring@test.example"
    # The download itself is not recorded as done: nothing was delivered.
    assert not db.scalars(select(AuditEvent).where(AuditEvent.action == "letter.downloaded")).all()


def test_a_flipped_byte_in_a_document_is_refused(poly_case, db, storage, login_as):
    case = poly_case
    url = f"/cases/{case.id}/documents/{case.doc_id}"
    assert login_as("referring").get(url).data == PDF
    _flip(storage, case.doc_key, 10)
    r = login_as("referring").get(url)
    assert r.status_code == 503 and b"%PDF" not in r.data
    [event] = _integrity_events(db)
    assert event.object_id == case.doc_key and event.case_id == case.id


def test_a_flipped_byte_in_a_dicom_instance_breaks_the_stream_and_is_never_rendered(poly_case, db, storage, login_as,
                                                                                      caplog):
    case = inst = poly_case
    size = len(storage.read_bytes(inst.blob_key))
    _flip(storage, inst.blob_key, -40)  # in the pixel data: any reader would show a wrong pixel
    caplog.set_level(logging.ERROR)
    client = login_as("reviewer")
    url = case.urls["instance"]
    r = client.get(url)  # streamed: the status and headers left before the bytes were hashed
    assert r.status_code == 200
    received = b""
    with pytest.raises(StoredFileCorrupt):
        for chunk in r.response:
            received += chunk
    r.close()
    # A broken transfer: the first chunks left, never the last one nor the closing boundary.
    assert STREAM_CHUNK <= len(received) < size and not received.endswith(b"--\r\n")
    assert any(rec.levelno == logging.ERROR and inst.blob_key in rec.getMessage() for rec in caplog.records)
    # Every reading of the corrupt original is refused, not rendered from wrong bytes.
    for path in (f"{url}/rendered", f"{url}/metadata",
                 f"/cases/{case.id}/series/{inst.series_id}/slices/0.png",
                 f"/cases/{case.id}/series/{inst.series_id}/slices/0/header.json"):
        r = client.get(path, headers={"Accept": "image/png"})
        assert r.status_code == 503, path
    assert {e.object_id for e in _integrity_events(db)} == {inst.blob_key}


def test_cached_derivatives_are_rebuilt_when_their_bytes_changed(app, db, storage, users, make_case, login_as):
    from review_portal.imaging.services import mark_key_image

    case = make_case("in_review", scans=["CT_small.dcm"])
    series = db.scalar(select(Series).join(Study).where(Study.case_id == case.id))
    key_image = mark_key_image(db, storage, case, series, slice_index=0, center=40.0, width=400.0, caption="",
                               by=users["reviewer"], ip="", now=NOW)
    db.commit()
    client = login_as("reviewer")
    for url, key in ((f"/cases/{case.id}/series/{series.id}/thumbnail.png", series.thumbnail_key),
                     (f"/cases/{case.id}/key-images/{key_image.id}.png", key_image.png_key)):
        _flip(storage, key, 60)
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.data.startswith(b"\x89PNG")
        db.expire_all()
        current = db.get(Series, series.id).thumbnail_key if "thumbnail" in url else db.get(KeyImage, key_image.id).png_key
        assert hashlib.sha256(r.data).hexdigest() == current, url  # what was sent is what the record names
        assert storage.verify(current), url


def test_storage_scrub_names_corrupt_and_missing_files(app, db, storage, make_case):
    runner = app.test_cli_runner()
    case = make_case("letter_delivered", scans=["CT_small.dcm"])
    clean = runner.invoke(args=["storage-scrub"])
    assert clean.exit_code == 0, clean.output
    assert "Every stored file matches its sha256." in clean.output
    letter = db.scalar(select(Letter).where(Letter.case_id == case.id))
    instance = db.scalar(select(Instance).join(Series).join(Study).where(Study.case_id == case.id))
    _flip(storage, letter.blob_key, 100)
    storage.local_path(instance.blob_key).unlink()
    result = runner.invoke(args=["storage-scrub"])
    assert result.exit_code != 0
    assert f"CORRUPT: {letter.blob_key} does not match its sha256" in result.output
    assert f"MISSING: instances.blob_key id={instance.id} -> {instance.blob_key}" in result.output
    # The missing file is named by every reference to it: the instance and the upload it came in with.
    missing = [line for line in result.output.splitlines() if line.startswith("MISSING:")]
    assert len(missing) == 2 and all(line.endswith(instance.blob_key) for line in missing)
    assert any(line.startswith("MISSING: ingest_jobs.sources") for line in missing), missing
    assert "1 corrupt" in result.output and "2 missing" in result.output
