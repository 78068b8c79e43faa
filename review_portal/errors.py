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
