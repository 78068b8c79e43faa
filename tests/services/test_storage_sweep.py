"""Crash leftovers: spooled uploads and scratch folders older than SPOOL_MAX_AGE_MINUTES are removed at
start-up (create_app, once per process) and by `flask storage-sweep`; anything younger is left alone."""
import os
import time

from config import TestConfig
from review_portal import create_app


def _age(path, seconds):
    old = time.time() - seconds
    os.utime(path, (old, old))


def _leftovers(tmp_dir):
    tmp_dir.mkdir(parents=True, exist_ok=True)
    spooled = tmp_dir / "tmpabc123"  # a half-written spool file of a crashed upload
    spooled.write_bytes(b"x" * 100)
    _age(spooled, 3600)
    scratch = tmp_dir / "tmpdir42"  # a scratch folder a crashed ingest left
    (scratch / "inner").mkdir(parents=True)
    (scratch / "inner" / "scan-0").write_bytes(b"dicom")
    for p in (scratch / "inner" / "scan-0", scratch / "inner", scratch):
        _age(p, 3600)
    busy = tmp_dir / "tmpbusy"  # an old folder an upload still writes into: not a leftover
    busy.mkdir()
    (busy / "part").write_bytes(b"still arriving")
    _age(busy, 3600)
    fresh = tmp_dir / "tmpfresh"
    fresh.write_bytes(b"an upload in progress")
    return spooled, scratch, busy, fresh


def test_storage_sweep_command_removes_only_what_is_older_than_the_longest_upload(app, storage):
    spooled, scratch, busy, fresh = _leftovers(storage._tmp)
    result = app.test_cli_runner().invoke(args=["storage-sweep", "--max-age-minutes", "30"])
    assert result.exit_code == 0 and "2 leftover" in result.output, result.output
    assert not spooled.exists() and not scratch.exists()
    assert busy.exists() and fresh.exists()


def test_create_app_sweeps_once_at_start_with_the_configured_age(tmp_path):
    store_dir = tmp_path / "store"
    spooled, scratch, busy, fresh = _leftovers(store_dir / "tmp")
    app = create_app(TestConfig, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", STORAGE_DIR=str(store_dir),
                     SPOOL_MAX_AGE_MINUTES=30)
    try:
        assert not spooled.exists() and not scratch.exists()
        assert busy.exists() and fresh.exists()
        # the default (hours) keeps an hour-old upload
        spool2 = store_dir / "tmp" / "tmpagain"
        spool2.write_bytes(b"y")
        _age(spool2, 3600)
        again = create_app(TestConfig, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", STORAGE_DIR=str(store_dir))
        again.extensions["db_engine"].dispose()
        assert spool2.exists() and TestConfig.SPOOL_MAX_AGE_MINUTES >= 120
    finally:
        app.extensions["db_engine"].dispose()
