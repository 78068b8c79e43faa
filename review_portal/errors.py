"""Domain errors. Services raise them; one handler in create_app turns them into 4xx pages."""
from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    status_code = 400


class PermissionDenied(DomainError):
    status_code = 403


class NotFound(DomainError):
    """Also used for objects the user may not know exist, so ids cannot be probed."""

    status_code = 404


class IllegalTransition(DomainError):
    status_code = 409


class ConcurrentEdit(DomainError):
    status_code = 409


INTEGRITY_MESSAGE = "The stored file failed its integrity check; the administrators have been alerted."


class StoredFileCorrupt(DomainError):
    """A stored blob no longer hashes to its key (its sha256). It is never served: the request is refused
    with 503 (the fault is ours and the bytes may be restored from a backup), the refusal is audited by the
    app's error handler and the mismatch is logged at ERROR by storage, where it was found."""

    status_code = 503

    def __init__(self, key: str, message: str = INTEGRITY_MESSAGE):
        super().__init__(message)
        self.key = key
