"""Engine, session and declarative base.

One scoped session per thread; the request boundary (see create_app) commits once,
or rolls back when anything failed. Services only flush.
"""
from __future__ import annotations

from datetime import timezone
from typing import Callable

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    # Named constraints, so migrations can alter them on SQLite (batch mode) and PostgreSQL alike.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class UTCDateTime(TypeDecorator):
    """Stores UTC, always hands back timezone-aware datetimes (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use review_portal.clock.utcnow()")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


session = scoped_session(sessionmaker(expire_on_commit=False))


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10):
    kwargs = {}
    if url.startswith("sqlite"):
        # The live-server browser tests and the dev server use threads.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif url.startswith("postgresql"):
        # One pool per process (gunicorn worker). pre_ping survives a database failover or restart;
        # recycle keeps connections younger than typical proxy/firewall idle timeouts.
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, pool_recycle=1800,
                      connect_args={"application_name": "review_portal"})
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()
    return engine


def init_app(app) -> None:
    engine = make_engine(app.config["DATABASE_URL"], pool_size=app.config.get("DB_POOL_SIZE", 5),
                         max_overflow=app.config.get("DB_MAX_OVERFLOW", 10))
    app.extensions["db_engine"] = engine
    session.configure(bind=engine)

    @app.teardown_appcontext
    def _remove_session(exc):
        session.remove()


def create_all(engine) -> None:
    """Create every table registered on Base (review_portal.models registers them all)."""
    Base.metadata.create_all(engine)


# Some writes must outlast the failure of the request that made them: a failed login's audit row and its
# throttle count, a refused signature. They register a redo here; the request boundary rolls the unit of
# work back, runs the redos in a fresh transaction and commits that. Views never commit for them.
_SURVIVORS = "survive_rollback"


def survive_rollback(db: Session, redo: Callable[[Session], None]) -> None:
    db.info.setdefault(_SURVIVORS, []).append(redo)


def redo_survivors(db: Session) -> int:
    """After a rollback: write again what must outlive the failed unit of work. Returns how many."""
    redos = db.info.pop(_SURVIVORS, [])
    for redo in redos:
        redo(db)
    return len(redos)


# A few failed requests consist of nothing but what must be kept: a refused login is its counted failure and
# its audit row. Such a request asks the boundary to commit its unit of work although it answers 401: the
# throttle row stays locked until that commit, so a parallel attempt waits and then sees the new count,
# where a rollback and a replay would leave a moment in which it could slip past.
_KEEP = "keep_despite_failure"


def keep_despite_failure(db: Session) -> None:
    db.info[_KEEP] = True


def wants_keeping(db: Session) -> bool:
    return bool(db.info.pop(_KEEP, False))
