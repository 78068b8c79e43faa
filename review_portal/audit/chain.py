"""The hash chain that makes the audit trail tamper-evident.

Events are inserted in the request's own transaction (so they commit or vanish with the change they
describe). seal() gives every unsealed event, in id order, the next sequence number, the previous event's
hash and its own hash: sha256(prev_hash + canonical JSON of all fields). Editing, deleting or reordering a
sealed row breaks the chain at that row, and verify() names it. Sealing is serialised: a PostgreSQL advisory
lock across processes and hosts; on SQLite the seal takes the database's write lock before it reads the head.

Sealing is off the request path: a periodic sealer (audit.sealer, a thread in every process of the portal)
seals every AUDIT_SEAL_INTERVAL_SECONDS, so a committed event is unsealed for at most that long plus one seal.
With AUDIT_SEAL_AFTER_COMMIT="try" the writer also seals right after its commit, but only when nobody else is
sealing (a non-blocking lock; pg_try_advisory_xact_lock across processes): it never waits for the chain.

The tail: deleting the newest rows leaves a shorter chain that still verifies. So after each seal commits, the
sealer (serialised by the same locks) anchors the head it committed outside the database: an append-only object `EPOCH-SEQ` in the blob store
(Storage.put_anchor, never overwritten) and a line in the application log. verify() checks the chain against
every anchor of the latest epoch; a restore from backup starts a new epoch with an audited event
(`flask audit-restore-epoch`), so a restore reads differently from a deletion.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass, field

from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session

from review_portal.audit.models import AuditEvent
from review_portal.clock import utcnow
from review_portal.storage import AnchorExists

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HASHED_FIELDS = ("at", "actor_id", "actor_email", "actor_role", "action", "case_id", "case_ref", "patient_mrn",
                 "patient_name", "object_type", "object_id", "source_ip", "user_agent", "outcome", "reason",
                 "flagged", "request_id", "detail")
_LOCK = threading.Lock()
_ADVISORY_KEY = 0x5EC0A0D17  # any constant shared by every process of this portal
EPOCH_ACTION = "audit.epoch_started"
_ANCHOR_NAME = re.compile(r"^(\d{6})-(\d{12})$")


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


def seal(bind, anchor_store=None, *, wait: bool = True) -> int:
    """Chain every unsealed event. Safe to call any time, from any thread or process.
    With `anchor_store` (the blob store), a seal that chained something also anchors the new head.
    With wait=False it returns 0 at once when another thread or process is sealing (that seal, or the
    periodic sealer's next one, chains these events too)."""
    count = _seal(bind, wait=wait)
    if anchor_store is not None:
        _anchor_quietly(anchor_store, count)
    return count


_last_seal = threading.local()  # the head this thread's last seal committed, for the anchor that follows


def _anchor_quietly(anchor_store, sealed: int) -> None:
    head = getattr(_last_seal, "head", None)
    _last_seal.head = None
    if sealed and anchor_store is not None and head is not None:
        try:
            write_anchor(anchor_store, head)
        except Exception:  # the chain is sealed; the next seal anchors the (later) head
            log.exception("audit anchor failed; the next seal writes one")


def _epoch_of(detail: str | None) -> int:
    match = re.search(r"epoch=(\d+)", detail or "")
    return int(match.group(1)) if match else 1


def _seal(bind, *, wait: bool = True) -> int:
    _last_seal.head = None
    if not _LOCK.acquire(blocking=wait):
        return 0
    try:
        with Session(bind=bind, expire_on_commit=False) as db:
            dialect = db.get_bind().dialect.name
            if dialect == "postgresql":
                if wait:
                    db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
                elif not db.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY}).scalar():
                    return 0  # another process is sealing: it (or the next periodic seal) chains ours too
            elif dialect == "sqlite":
                # Take the database's write lock BEFORE reading the head (pysqlite begins the transaction at the
                # first write), so two processes never chain from the same head. Changes nothing.
                db.execute(text("UPDATE audit_events SET seq = seq WHERE 1 = 0"))
            # The head and the current epoch (1, or the one the latest sealed restore event started) in one statement.
            epoch_detail = (select(AuditEvent.detail).where(AuditEvent.action == EPOCH_ACTION, AuditEvent.seq.is_not(None))
                            .order_by(AuditEvent.seq.desc()).limit(1).scalar_subquery())
            head = db.execute(select(AuditEvent.seq, AuditEvent.hash, epoch_detail).where(AuditEvent.seq.is_not(None))
                              .order_by(AuditEvent.seq.desc()).limit(1)).first()
            seq, prev = (head[0], head[1]) if head else (0, GENESIS)
            epoch = _epoch_of(head[2]) if head else 1
            pending = list(db.scalars(select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id)))
            for e in pending:
                seq += 1
                h = link_hash(prev, seq, e)
                if e.action == EPOCH_ACTION:  # a recorded restore sealed in this batch starts its epoch here
                    epoch = _epoch_of(e.detail)
                # No session synchronisation: evaluating each UPDATE against every loaded event made a
                # large batch (e.g. the demo history, ~2,000 events) quadratic: 30 s instead of under 1 s.
                db.execute(update(AuditEvent).where(AuditEvent.id == e.id, AuditEvent.seq.is_(None))
                           .values(seq=seq, prev_hash=prev, hash=h).execution_options(synchronize_session=False))
                prev = h
            db.commit()
            if pending:
                _last_seal.head = Anchor(epoch, seq, prev, utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            return len(pending)
    finally:
        _LOCK.release()


@dataclass(frozen=True)
class Anchor:
    """The chain's head at one moment, kept outside the database: epoch, sequence number and hash."""

    epoch: int
    seq: int
    hash: str
    at: str = ""

    @property
    def name(self) -> str:
        return f"{self.epoch:06d}-{self.seq:012d}"

    def to_bytes(self) -> bytes:
        return json.dumps({"epoch": self.epoch, "seq": self.seq, "hash": self.hash, "at": self.at},
                          sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Anchor":
        v = json.loads(data)
        return cls(int(v["epoch"]), int(v["seq"]), str(v["hash"]), str(v.get("at", "")))


def write_anchor(store, anchor: Anchor) -> Anchor:
    """Append a committed head to the anchor log (one object per anchor) and to the application log.

    Sealing is serialised (the seal lock within a process, the PostgreSQL advisory lock across hosts) and
    each anchor is created at most once (Storage.put_anchor: an exclusive create, a conditional PUT on S3),
    so concurrent writers can never replace each other's anchor. A name already taken by another hash means
    the chain was cut back and grew again: logged as an error, and verify() fails on it."""
    try:
        store.put_anchor(anchor.name, anchor.to_bytes())
    except AnchorExists:
        kept = Anchor.from_bytes(store.read_anchor(anchor.name))
        if kept.hash != anchor.hash:
            log.error("AUDIT ANCHOR CONFLICT: anchor %s holds head %s, the chain now has %s at event #%d",
                      anchor.name, kept.hash, anchor.hash, anchor.seq)
        return kept
    log.info("audit anchor %s: epoch %d, event #%d, head hash %s", anchor.name, anchor.epoch, anchor.seq, anchor.hash)
    return anchor


def load_anchors(store) -> list[Anchor]:
    anchors = []
    for name in store.list_anchors():
        if _ANCHOR_NAME.match(name):
            try:
                anchors.append(Anchor.from_bytes(store.read_anchor(name)))
            except (ValueError, KeyError) as exc:
                log.error("unreadable audit anchor %s: %s", name, exc)
    return anchors


@dataclass
class Verdict:
    ok: bool
    checked: int
    unsealed: int
    head_hash: str
    broken_event_id: int | None = None
    broken_seq: int | None = None
    problem: str = ""
    anchor: Anchor | None = None  # the newest anchor of the latest epoch, when there is one
    notes: list[str] = field(default_factory=list)


def verify(db: Session, batch: int = 2000, *, anchors: list[Anchor] = (), expect_head: str | None = None) -> Verdict:
    """Walk the chain. With `anchors`, every anchor of the latest epoch must name an event of the chain with
    the same hash (a missing one means the newest events were deleted); `expect_head` is one hash given by
    hand that must be in the chain."""
    verdict = _verify_links(db, batch, anchors, expect_head)
    if verdict.ok and anchors:
        older = [a for a in anchors if verdict.anchor and a.epoch < verdict.anchor.epoch]
        if older:
            last_old = max(older, key=lambda a: (a.epoch, a.seq))
            start = db.scalar(select(AuditEvent.seq).where(AuditEvent.action == EPOCH_ACTION,
                                                           AuditEvent.seq.is_not(None))
                              .order_by(AuditEvent.seq.desc()).limit(1))
            verdict.notes.append(f"epoch {verdict.anchor.epoch} began with a recorded restore (event #{start}); "
                                 f"epoch {last_old.epoch} had reached event #{last_old.seq} (anchor {last_old.name})")
    return verdict


def _verify_links(db: Session, batch: int, anchors, expect_head: str | None) -> Verdict:
    latest_epoch = max((a.epoch for a in anchors), default=None)
    pending = {a.seq: a for a in sorted((a for a in anchors if a.epoch == latest_epoch), key=lambda a: a.seq)}
    newest = pending[max(pending)] if pending else None
    found_expected = expect_head is None
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
            anchor = pending.pop(e.seq, None)
            if anchor is not None and anchor.hash != e.hash:
                return Verdict(False, checked, 0, prev, e.id, e.seq,
                               f"event #{e.seq} (id {e.id}) is not the event anchor {anchor.name} recorded "
                               f"(hash {anchor.hash}): the chain was cut back and rewritten", anchor=newest)
            found_expected = found_expected or e.hash == expect_head
            prev, expected_seq, checked = e.hash, expected_seq + 1, checked + 1
        db.expunge_all()
    if pending:
        anchor = pending[min(pending)]
        return Verdict(False, checked, 0, prev, None, anchor.seq,
                       f"anchor {anchor.name} (written {anchor.at}) records event #{anchor.seq} with head hash "
                       f"{anchor.hash}, but the chain ends at #{checked}: the newest events were deleted "
                       "(after a restore from backup, record it with `flask audit-restore-epoch`)", anchor=newest)
    if not found_expected:
        return Verdict(False, checked, 0, prev, None, None,
                       f"the expected head hash {expect_head} is not in the chain (it ends at #{checked}, "
                       f"head {prev}): events were deleted or rewritten", anchor=newest)
    unsealed = len(list(db.scalars(select(AuditEvent.id).where(AuditEvent.seq.is_(None)))))
    return Verdict(True, checked, unsealed, prev, anchor=newest)


def install(session_factory, *, after_commit: str = "try") -> None:
    """Forget rollback survivors once committed; with after_commit="try", try a non-blocking seal after every
    commit that wrote audit events (the periodic sealer, audit.sealer, chains whatever this skips)."""

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
        if session.info.pop("audit_dirty", False) and _after_commit["mode"] == "try":
            try:
                sealed = seal(session.get_bind(), wait=False)
            except Exception:  # the events are committed; the periodic sealer chains them
                log.exception("audit seal failed; the periodic sealer will retry")
                return
            _anchor_quietly(session.info.get("audit_anchor_store"), sealed)

    _after_commit["mode"] = after_commit


_installed = False
_after_commit = {"mode": "try"}


def install_once(session_factory, *, after_commit: str = "try") -> None:
    """Install the commit hook once per process; the latest app's AUDIT_SEAL_AFTER_COMMIT decides what it does."""
    global _installed
    if after_commit not in ("try", "off"):
        raise ValueError("AUDIT_SEAL_AFTER_COMMIT is 'try' or 'off'")
    if not _installed:
        install(session_factory, after_commit=after_commit)
        _installed = True
    _after_commit["mode"] = after_commit
