"""Password hashing with argon2id (argon2-cffi); parameters come from config so tests can be cheap."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


def configure(time_cost: int | None = None, memory_cost: int | None = None) -> None:
    global _hasher
    kwargs = {}
    if time_cost:
        kwargs["time_cost"] = time_cost
    if memory_cost:
        kwargs["memory_cost"] = memory_cost
    _hasher = PasswordHasher(**kwargs)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


# Verifying against this when the account does not exist keeps the answer time the same.
_DUMMY_HASH: str | None = None


def burn_time(password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash("not-a-real-password")
    verify_password(_DUMMY_HASH, password)


# --- Password policy (ASVS 2.1): length, not common, not the account's own name -------------------

MIN_LENGTH = 12
MAX_LENGTH = 128  # long passphrases are welcome; the cap only stops hashing megabytes
_COMMON_FILE = Path(__file__).with_name("data") / "common-passwords.txt"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with open(_COMMON_FILE, encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip() and not line.startswith("#"))


def _letters_only(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def policy_problems(password: str, *, email: str = "", name: str = "") -> list[str]:
    """Why this password is refused; an empty list means it is acceptable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters (a few unrelated words work well).")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    common = common_passwords()
    # "password2026!" is "password" with decoration: strip digits and symbols and check again.
    if lowered in common or (_letters_only(password) in common and len(_letters_only(password)) < MIN_LENGTH):
        problems.append("This password is on the list of commonly used passwords; choose another.")
    elif len(set(password)) < 4:
        problems.append("Use more than a few different characters.")
    local = email.split("@")[0].lower() if email else ""
    if (local and len(local) >= 4 and local in lowered) or (name and name.lower() in lowered and len(name) >= 4):
        problems.append("Do not use your name or e-mail address in the password.")
    return problems
