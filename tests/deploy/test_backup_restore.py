"""Backups that restore: back up the database (SQLite online backup) and the object store, wipe both,
restore into a new place, and every page and download of a demo-like case answers with identical bytes.
`flask backup-verify` checks every reference in the one list (models.BLOB_REFERENCES): key-image PNGs and
ingest sources included."""
import hashlib
import re
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from config import TestConfig
from review_portal import create_app
from review_portal.cases.models import Document
from review_portal.db import session as db_session
from review_portal.imaging.models import IngestJob, KeyImage
from tests.conftest import INSTITUTION, NOW, PASSWORD, TEST_DATABASE, login_client



def _demo_like_case(db, storage, make_case, users, tmp_path):
    from review_portal.cases.services import add_document
    from review_portal.imaging.services import mark_key_image, series_of_case
    from review_portal.opinions.services import OpinionDraft, save_draft
    from review_portal.uploads import UploadedFile
    from review_portal.workflow.signing import sign_and_issue_letter
    from weasyprint import HTML

    case = make_case("in_review", scans=["CT_small.dcm"])
    reviewer = users["reviewer"]
    pdf = tmp_path / "pathology.pdf"
    pdf.write_bytes(HTML(string="<p>Pathology report (synthetic)</p>").write_pdf())
    add_document(db, storage, case, UploadedFile("pathology.pdf", pdf), by=users["referring"], now=NOW)
    series = series_of_case(db, case.id)[0]
    mark_key_image(db, storage, case, series, slice_index=0, center=40.0, width=400.0, caption="Index lesion",
                   by=reviewer, ip="127.0.0.1", now=NOW + timedelta(minutes=20))
    save_draft(db, case, OpinionDraft("refined", "modify", "Refined diagnosis.", "Modified plan.", "Because.", "HER2."),
               based_on_version=None, by=reviewer, now=NOW + timedelta(hours=1), ip="127.0.0.1")
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION, by=reviewer,
                          now=NOW + timedelta(hours=2), ip="127.0.0.1")
    db.commit()
    return case


def _urls(db, case):
    from review_portal.imaging.services import series_of_case
    from review_portal.letters.services import letters_for_case

    series = series_of_case(db, case.id)[0]
    inst = series.instances[0]
    letter = letters_for_case(db, case.id)[0]
    doc = db.scalar(select(Document).where(Document.case_id == case.id))
    key_image = db.scalar(select(KeyImage).where(KeyImage.case_id == case.id))
    return {
        "case page": f"/cases/{case.id}",
        "letter PDF": f"/cases/{case.id}/letters/{letter.id}.pdf",
        "document": f"/cases/{case.id}/documents/{doc.id}",
        "rendered slice": f"/cases/{case.id}/series/{series.id}/slices/0.png",
        "thumbnail": f"/cases/{case.id}/series/{series.id}/thumbnail.png",
        "key image": f"/cases/{case.id}/key-images/{key_image.id}.png",
        "DICOM retrieve": (f"/dicomweb/cases/{case.id}/studies/{series.study.study_instance_uid}/series/"
                           f"{series.series_instance_uid}/instances/{inst.sop_instance_uid}"),
    }


def _fingerprints(app, email, urls):
    client = app.test_client()
    login_client(app, client, email)
    out = {}
    for name, url in urls.items():
        r = client.get(url)
        assert r.status_code == 200, (name, r.status_code)
        body = r.get_data()
        boundary = re.search(r'boundary="?([0-9a-f]+)', r.headers.get("Content-Type", ""))
        if boundary:  # the multipart boundary is random per response; the parts are what must match
            body = body.replace(boundary.group(1).encode(), b"BOUNDARY")
        # The form token belongs to the login session, not to the case.
        body = re.sub(rb'name="csrf_token" value="[^"]*"', b'name="csrf_token" value=""', body)
        out[name] = hashlib.sha256(body).hexdigest()
    return out


def _backup(db_file: Path, store: Path, dest: Path) -> None:
    dest.mkdir()
    src, out = sqlite3.connect(db_file), sqlite3.connect(dest / "portal.db")
    with out:
        src.backup(out)  # a consistent online copy, WAL included
    src.close()
    out.close()
    # Objects and the audit anchors; not the temporary area nor caches of derived bytes (rebuilt on demand).
    shutil.copytree(store, dest / "store", ignore=shutil.ignore_patterns("tmp", "s3-cache"))


@pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="file-copy backup of the SQLite database (pg_dump not done)")
def test_backup_wipe_restore_serves_every_page_and_download_with_identical_bytes(
        app, db, storage, make_case, users, tmp_path, clock):
    case = _demo_like_case(db, storage, make_case, users, tmp_path)
    urls = _urls(db, case)
    db_file = Path(app.config["DATABASE_URL"][len("sqlite:///"):])
    store = Path(app.config["STORAGE_DIR"])
    before = _fingerprints(app, users["reviewer"].email, urls)
    before_referrer = _fingerprints(app, users["referring"].email, {"letter PDF": urls["letter PDF"]})

    db_session.remove()
    _backup(db_file, store, tmp_path / "backup")
    app.extensions["db_engine"].dispose()
    for p in db_file.parent.glob(db_file.name + "*"):  # wipe: database (and its WAL) and every object
        p.unlink()
    shutil.rmtree(store)

    restored_dir = tmp_path / "restored"
    shutil.copytree(tmp_path / "backup", restored_dir)
    restored = create_app(TestConfig, DATABASE_URL=f"sqlite:///{restored_dir / 'portal.db'}",
                          STORAGE_DIR=str(restored_dir / "store"))
    try:
        with restored.app_context():
            check = restored.test_cli_runner().invoke(args=["backup-verify"])
        assert check.exit_code == 0 and "Backup is consistent." in check.output, check.output
        assert _fingerprints(restored, users["reviewer"].email, urls) == before
        assert _fingerprints(restored, users["referring"].email, {"letter PDF": urls["letter PDF"]}) == before_referrer
        verify = restored.test_cli_runner().invoke(args=["audit-verify"])
        assert verify.exit_code == 0, verify.output
    finally:
        db_session.remove()
        restored.extensions["db_engine"].dispose()


def test_backup_verify_checks_key_image_pngs_and_ingest_sources(app, db, storage, make_case, users, tmp_path):
    case = _demo_like_case(db, storage, make_case, users, tmp_path)
    key_image = db.scalar(select(KeyImage).where(KeyImage.case_id == case.id))
    job = db.scalar(select(IngestJob).where(IngestJob.case_id == case.id))
    source_key = job.sources[0]["key"]
    storage.delete(key_image.png_key)
    storage.delete(source_key)
    bad = app.test_cli_runner().invoke(args=["backup-verify"])
    assert bad.exit_code != 0
    assert f"MISSING: key_images.png_key id={key_image.id} -> {key_image.png_key}" in bad.output
    assert f"MISSING: ingest_jobs.sources[].key id={job.id} -> {source_key}" in bad.output
