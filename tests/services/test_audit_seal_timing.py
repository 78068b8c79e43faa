"""The audit chain is sealed after the real commit, never when a SAVEPOINT is released.

Sealing runs on its own connection; on SQLite, sealing while the outer transaction still holds the
write lock would block until the lock timeout (it made every inline job stall the request).
"""
from review_portal.audit import chain
from review_portal.audit.models import AuditEvent
from review_portal.audit.services import record
from tests.conftest import NOW


def test_releasing_a_savepoint_does_not_seal_but_the_commit_does(db, users, monkeypatch):
    calls = []
    real_seal = chain.seal
    monkeypatch.setattr(chain, "seal", lambda bind: calls.append("seal") or real_seal(bind))

    record(db, action="test.outer", by=users["admin"], ip="127.0.0.1", now=NOW)
    savepoint = db.begin_nested()
    record(db, action="test.inner", by=users["admin"], ip="127.0.0.1", now=NOW)
    db.flush()
    savepoint.commit()
    assert calls == []  # still inside the outer transaction

    db.commit()
    assert calls == ["seal"]
    sealed = {e.action: e.seq for e in db.query(AuditEvent).filter(AuditEvent.action.like("test.%"))}
    assert sealed["test.outer"] is not None and sealed["test.inner"] is not None
