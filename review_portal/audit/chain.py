"""The hash chain that makes the audit trail tamper-evident.

Events are inserted in the request's own transaction (so they commit or vanish with the change they
describe). Right after a commit, seal() gives every unsealed event, in id order, the next sequence
number, the previous event's hash and its own hash: sha256(prev_hash + canonical JSON of all fields).
Editing, deleting or reordering a sealed row breaks the chain at that row, and verify() names it.
Sealing is serialised: a PostgreSQL advisory lock across processes, a lock per process for SQLite.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass

from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session

from review_portal.audit.models import AuditEvent

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HASHED_FIELDS = ("at", "actor_id", "actor_email", "actor_role", "action", "case_id", "case_ref", "patient_mrn",
                 "patient_name", "object_type", "object_id", "source_ip", "user_agent", "outcome", "reason",
                 "flagged", "request_id", "detail")
_LOCK = threading.Lock()
_ADVISORY_KEY = 0x5EC0A0D17  # any constant shared by every process of this portal


def canonical(e: AuditEvent) -> str:
    values = {}
    for name in HASHED_FIELDS:
        value = getattr(e, name)
        if name == "at":
            value = value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif name == "flagged":
            value = bool(value)
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link_hash(prev_hash: str, seq: int, e: AuditEvent) -> str:
    return hashlib.sha256(f"{prev_hash}|{seq}|{canonical(e)}".encode()).hexdigest()


def seal(bind) -> int:
    """Chain every unsealed event. Safe to call any time, from any thread or process."""
    with _LOCK:
        with Session(bind=bind, expire_on_commit=False) as db:
            if db.get_bind().dialect.name == "postgresql":
                db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
            head = db.execute(select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.is_not(None))
                              .order_by(AuditEvent.seq.desc()).limit(1)).first()
            seq, prev = (head[0], head[1]) if head else (0, GENESIS)
            pending = list(db.scalars(select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id)))
            for e in pending:
                seq += 1
                h = link_hash(prev, seq, e)
                # No session synchronisation: evaluating each UPDATE against every loaded event made a
                # large batch (e.g. the demo history, ~2,000 events) quadratic: 30 s instead of under 1 s.
                db.execute(update(AuditEvent).where(AuditEvent.id == e.id, AuditEvent.seq.is_(None))
                           .values(seq=seq, prev_hash=prev, hash=h).execution_options(synchronize_session=False))
                prev = h
            db.commit()
            return len(pending)


@dataclass
class Verdict:
    ok: bool
    checked: int
    unsealed: int
    head_hash: str
    broken_event_id: int | None = None
    broken_seq: int | None = None
    problem: str = ""


def verify(db: Session, batch: int = 2000) -> Verdict:
    expected_seq, prev, checked = 1, GENESIS, 0
    while True:
        rows = list(db.scalars(select(AuditEvent).where(AuditEvent.seq.is_not(None), AuditEvent.seq >= expected_seq)
                               .order_by(AuditEvent.seq).limit(batch)))
        if not rows:
            break
        for e in rows:
            if e.seq != expected_seq:
                return Verdict(False, checked, 0, prev, e.id, expected_seq,
                               f"event #{expected_seq} is missing (next found is #{e.seq}, id {e.id}): rows were deleted")
            if e.prev_hash != prev:
                return Verdict(False, checked, 0, prev, e.id, e.seq,
                               f"event #{e.seq} (id {e.id}) does not point at the previous event's hash")
            if link_hash(prev, e.seq, e) != e.hash:
                return Verdict(False, checked, 0, prev, e.id, e.seq,
                               f"event #{e.seq} (id {e.id}) was changed after it was written")
            prev, expected_seq, checked = e.hash, expected_seq + 1, checked + 1
        db.expunge_all()
    unsealed = len(list(db.scalars(select(AuditEvent.id).where(AuditEvent.seq.is_(None)))))
    return Verdict(True, checked, unsealed, prev)


def install(session_factory) -> None:
    """Seal after every commit that wrote audit events; forget rollback survivors once committed."""

    @event.listens_for(session_factory, "before_flush")
    def _note_audit(session, _ctx, _instances):
        if any(isinstance(o, AuditEvent) for o in session.new):
            session.info["audit_dirty"] = True

    @event.listens_for(session_factory, "after_commit")
    def _seal_after_commit(session):
        if session.in_nested_transaction():
            # A SAVEPOINT was released (e.g. an inline job): the outer transaction still holds the write
            # lock, so sealing from another connection now would only wait on it. Seal at the real commit.
            return
        session.info.pop("audit_survivors", None)
        if session.info.pop("audit_dirty", False):
            try:
                seal(session.get_bind())
            except Exception:  # the events are committed; the next seal chains them
                log.exception("audit seal failed; will retry on the next commit")


_installed = False


def install_once(session_factory) -> None:
    global _installed
    if not _installed:
        install(session_factory)
        _installed = True
