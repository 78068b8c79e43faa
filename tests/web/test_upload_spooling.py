"""Uploaded files stream straight to disk, hashed while they arrive, and go into the store without another copy;
a bad file among good ones loses nothing, and no spooled part is left behind."""
from __future__ import annotations

import hashlib
import io

from sqlalchemy import select

from review_portal.imaging.models import IngestJob, Instance
from review_portal.uploads import HashedSpool
from tests.imaging_helpers import synth_series


def test_a_bad_file_among_good_ones_loses_nothing(app, db, storage, make_case, login_as, tmp_path, monkeypatch):
    case = make_case("assigned")
    good = synth_series(tmp_path / "ct", 4)
    spools: list[HashedSpool] = []
    real_init = HashedSpool.__init__

    def watched(self, directory):
        real_init(self, directory)
        spools.append(self)

    monkeypatch.setattr(HashedSpool, "__init__", watched)
    files = [(io.BytesIO(p.read_bytes()), p.name) for p in good[:2]]
    files += [(io.BytesIO(b"not a DICOM file at all" * 1000), "notes.dcm")]
    files += [(io.BytesIO(p.read_bytes()), p.name) for p in good[2:]]
    r = login_as("referring").post(f"/cases/{case.id}/scans", data={"scans": files},
                                   headers={"X-Requested-With": "fetch"})
    assert r.status_code == 200, r.json
    assert r.json["ingest"]["accepted"] == 4
    assert [x["name"] for x in r.json["ingest"]["rejected"]] == ["notes.dcm"]
    assert len(spools) == 5, "every file part went to a hashed spool file"

    stored = {i.blob_key for i in db.scalars(select(Instance))}
    expected = {hashlib.sha256(p.read_bytes()).hexdigest() for p in good}
    assert stored == expected
    assert all(storage.verify(key) for key in stored)
    # The upload as sent is kept byte for byte, the bad file too (the job can be re-run from it).
    [job] = db.scalars(select(IngestJob))
    sent = [s["key"] for s in job.sources]
    assert hashlib.sha256(b"not a DICOM file at all" * 1000).hexdigest() in sent
    assert all(storage.verify(k) for k in sent)
    # Nothing spooled is left in the temporary area once the request is over.
    assert not list(storage.spool_area().glob("upload-*"))


def test_the_hash_taken_while_writing_is_the_stored_key(storage, tmp_path):
    data = bytes(range(256)) * 5000
    with HashedSpool(storage.spool_area()) as spool:
        for at in range(0, len(data), 65536):
            spool.write(data[at:at + 65536])
        spool.seek(0)
        assert spool.read(10) == data[:10]
        target = tmp_path / "moved"
        sha = spool.move_to(target)
    assert sha == hashlib.sha256(data).hexdigest() and target.read_bytes() == data
    key, created = storage.put_file(target, sha)
    assert (key, created) == (sha, True) and storage.read_bytes(key) == data
    assert storage.put_file(target, sha) == (sha, False)
    # A spool that was never moved is removed when closed.
    leftover = HashedSpool(storage.spool_area())
    leftover.write(b"partial")
    leftover.close()
    assert not list(storage.spool_area().glob("upload-*"))
