"""Rate limits shared by every process and host of the portal.

A limiter kept in a process's memory is per worker: four gunicorn workers on two hosts let a client through
eight times the limit, and a restart forgets it. This one counts in a fixed window shared by all of them: in
Redis when REDIS_URL is configured (INCR + EXPIRE), otherwise in the database (table `rate_limit_hits`, one
atomic upsert per counted request). The count is written in its own short transaction, so a request refused
with 429 (whose unit of work the request boundary rolls back) is still counted.

A fixed window lets a client spend its limit at the end of one window and again at the start of the next:
at most twice the limit in any span of one window. That is the price of one statement per check.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from review_portal.db import Base, UTCDateTime

log = logging.getLogger(__name__)


class RateLimitHit(Base):
    """Requests counted per scope (what is limited), key (who: an address) and window (its start, epoch seconds)."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (UniqueConstraint("scope", "key", "window_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    window_start: Mapped[int] = mapped_column(BigInteger)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SharedRateLimiter:
    def __init__(self, engine, redis_url: str = ""):
        self.engine = engine
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url)

    def allow(self, scope: str, key: str, limit: int, window: float, *, now: float | None = None) -> bool:
        """Count this request; False once `key` made more than `limit` in the current window of `window` seconds."""
        now = time.time() if now is None else now
        start = int(now // window * window)
        key = (key or "")[:255]
        if self._redis is not None:
            name = f"portal:ratelimit:{scope}:{key}:{start}"
            with self._redis.pipeline() as pipe:
                count, _ = pipe.incr(name).expire(name, int(window) * 2 + 1).execute()
            return int(count) <= limit
        return self._count_in_database(scope[:32], key, start, window, now) <= limit

    def _count_in_database(self, scope: str, key: str, start: int, window: float, now: float) -> int:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        at = datetime.fromtimestamp(now, timezone.utc)
        upsert = (insert(RateLimitHit).values(scope=scope, key=key, window_start=start, hits=1, updated_at=at)
                  .on_conflict_do_update(index_elements=["scope", "key", "window_start"],
                                         set_={"hits": RateLimitHit.hits + 1, "updated_at": at})
                  .returning(RateLimitHit.hits))
        with self.engine.begin() as conn:
            hits = conn.execute(upsert).scalar_one()
            if hits == 1:  # the first hit of a new window: forget this scope's windows that are over
                conn.execute(delete(RateLimitHit).where(RateLimitHit.scope == scope,
                                                        RateLimitHit.window_start < start - int(window)))
        return int(hits)

    def hits(self, scope: str, key: str, window: float, *, now: float | None = None) -> int:
        """The count in the current window (for tests and the operator)."""
        now = time.time() if now is None else now
        start = int(now // window * window)
        if self._redis is not None:
            return int(self._redis.get(f"portal:ratelimit:{scope}:{key}:{start}") or 0)
        with self.engine.connect() as conn:
            return int(conn.scalar(select(RateLimitHit.hits).where(
                RateLimitHit.scope == scope, RateLimitHit.key == key, RateLimitHit.window_start == start)) or 0)


def init_app(app) -> SharedRateLimiter:
    limiter = SharedRateLimiter(app.extensions["db_engine"], app.config.get("REDIS_URL") or "")
    app.extensions["rate_limiter"] = limiter
    return limiter
