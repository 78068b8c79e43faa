"""Personal API tokens. Only the sha256 of a token is stored: the token itself is shown once, at creation."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime

SCOPES = {"read": "Read (status, letters, FHIR)", "write": "Read and write (create referrals, push studies)"}


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(8))  # read | write (write includes read)
    # sha256 of the whole token: 256 random bits need no slow hash, and a lookup by hash stays one index probe.
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, so the owner can tell tokens apart in lists and logs without the secret.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str] = mapped_column(String(64), default="")

    user = relationship("User")

    def allows(self, scope: str) -> bool:
        return scope == "read" or self.scope == "write"

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    @property
    def scope_label(self) -> str:
        return SCOPES.get(self.scope, self.scope)
