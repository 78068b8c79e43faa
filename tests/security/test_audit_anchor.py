"""The audit chain's tail: the head is anchored outside the database after each seal, so deleting the newest
rows is detected by `flask audit-verify`; a recorded restore (`flask audit-restore-epoch`) starts a new epoch."""
import json
import logging

import pytest
from sqlalchemy import select, text

from review_portal.audit.chain import load_anchors, seal
from review_portal.audit.models import AuditEvent
from review_portal.storage import AnchorExists


def _head(db):
    db.expire_all()
    return db.execute(select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.is_not(None))
                      .order_by(AuditEvent.seq.desc()).limit(1)).first()


def _delete_newest(app, n):
    with app.extensions["db_engine"].begin() as conn:  # an insider removes the newest rows directly
        conn.execute(text("DELETE FROM audit_events WHERE seq > (SELECT MAX(seq) FROM audit_events) - :n"), {"n": n})


def test_each_seal_anchors_the_head_outside_the_database_and_in_the_log(app, db, storage, make_case, caplog):
    with caplog.at_level(logging.INFO, logger="review_portal.audit.chain"):
        make_case("assigned")
    seq, head = _head(db)
    anchors = load_anchors(storage)
    assert anchors and max(anchors, key=lambda a: a.seq).hash == head and max(a.seq for a in anchors) == seq
    assert any(head in r.getMessage() and "audit anchor" in r.getMessage() for r in caplog.records)
    newest = max(anchors, key=lambda a: a.seq)
    with pytest.raises(AnchorExists):  # append-only: a name is written once, never replaced
        storage.put_anchor(newest.name, b"{}")
    assert json.loads(storage.read_anchor(newest.name))["hash"] == head


def test_deleting_the_newest_rows_fails_verify_naming_the_anchor(app, db, storage, make_case):
    make_case("assigned")
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit-verify"])
    assert ok.exit_code == 0 and "intact" in ok.output and "anchor" in ok.output
    newest = max(load_anchors(storage), key=lambda a: a.seq)
    _delete_newest(app, 2)
    bad = runner.invoke(args=["audit-verify"])
    assert bad.exit_code == 1, bad.output
    assert f"anchor {newest.name}" in bad.output and "deleted" in bad.output


def test_deleted_tail_regrown_by_new_events_still_fails(app, db, storage, make_case, users):
    from review_portal.audit.services import record
    from tests.conftest import NOW

    make_case("assigned")
    _delete_newest(app, 3)
    for n in range(5):  # the chain grows past the old head again, with other events
        record(db, action="test.filler", by=users["admin"], ip="127.0.0.1", now=NOW, detail=str(n))
        db.commit()
    bad = app.test_cli_runner().invoke(args=["audit-verify"])
    assert bad.exit_code == 1 and "rewritten" in bad.output, bad.output


def test_expect_head_given_by_hand(app, db, make_case):
    make_case("assigned")
    seal(app.extensions["db_engine"])
    _, head = _head(db)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["audit-verify", "--expect-head", head]).exit_code == 0
    other = "ab" * 32
    bad = runner.invoke(args=["audit-verify", "--expect-head", other])
    assert bad.exit_code == 1 and other in bad.output


def test_a_recorded_restore_starts_a_new_epoch_and_verify_passes(app, db, storage, make_case):
    make_case("assigned")
    runner = app.test_cli_runner()
    before = max(load_anchors(storage), key=lambda a: a.seq)
    _delete_newest(app, 2)  # what restoring an older backup of the database looks like to the chain
    assert runner.invoke(args=["audit-verify"]).exit_code == 1
    restored = runner.invoke(args=["audit-restore-epoch", "--reason", "restore drill from the nightly dump"])
    assert restored.exit_code == 0, restored.output
    assert "epoch 2" in restored.output
    ok = runner.invoke(args=["audit-verify"])
    assert ok.exit_code == 0, ok.output
    assert "epoch 2 began with a recorded restore" in ok.output and before.name in ok.output
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "audit.epoch_started"))
    assert event.reason == "restore drill from the nightly dump" and "epoch=2" in event.detail
    # and deleting the tail of the new epoch is caught again
    make_case("assigned", patient_mrn="MRN-2")
    _delete_newest(app, 1)
    assert runner.invoke(args=["audit-verify"]).exit_code == 1
