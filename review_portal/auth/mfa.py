"""Second factor: TOTP (RFC 6238, pyotp) with replay refusal, QR enrolment, hashed one-time recovery codes."""
from __future__ import annotations

import secrets
from datetime import datetime

import pyotp
import segno
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from review_portal.audit.services import record
from review_portal.auth import alerts, passwords, throttle
from review_portal.auth.models import RecoveryCode, User
from review_portal.db import keep_despite_failure, survive_rollback
from review_portal.errors import InvalidInput

ISSUER = "Northbridge Second Opinion"
STEP = 30
RECOVERY_CODES = 10
# Recovery codes: 10 groups-of-5 characters from an alphabet without look-alikes (no 0/O, 1/l/I).
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg_data_uri(uri: str) -> str:
    """The otpauth:// URI as a QR code, rendered here (no third-party service ever sees the secret)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _normalise(code: str) -> str:
    return "".join(ch for ch in (code or "") if not ch.isspace()).lower()


def matching_step(secret: str, code: str, now: datetime, window: int = 1) -> int | None:
    """The time step (now ± window) whose code equals `code`, or None."""
    code = _normalise(code)
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP
    for step in range(current - window, current + window + 1):
        if secrets.compare_digest(totp.at(step * STEP), code):
            return step
    return None


def verify_totp(db: Session, user: User, code: str, *, ip: str, now: datetime) -> bool:
    """Accept a current code once. A code from a step already used (or earlier) is a replay and refused."""
    if not user.mfa_enabled:
        return False
    step = matching_step(user.totp_secret, code, now)
    if step is None:
        return False
    # Claim the step in the database, not in this process's copy of the row: two logins racing with the same code
    # both see the old last step, but only one UPDATE can move it past `step` (the other waits for the row lock,
    # then finds the condition false and changes nothing).
    claimed = db.execute(
        update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        record(db, action="mfa.replay_refused", by=user, ip=ip, now=now, object_type="user", object_id=user.id,
               outcome="denied", survive_rollback=True)
        return False
    set_committed_value(user, "totp_last_step", step)
    return True


def use_recovery_code(db: Session, user: User, code: str, *, ip: str, now: datetime) -> bool:
    code = _normalise(code).replace("-", "")
    if len(code) != 10:
        return False
    for row in db.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))):
        if passwords.verify_password(row.code_hash, code):
            # Spend the code only if nobody spent it meanwhile: of two requests racing with one code, one wins.
            spent = db.execute(
                update(RecoveryCode).where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                .values(used_at=now).execution_options(synchronize_session=False)
            ).rowcount
            if spent != 1:
                record(db, action="mfa.recovery_code_reused", by=user, ip=ip, now=now, object_type="user",
                       object_id=user.id, outcome="denied", survive_rollback=True)
                return False
            set_committed_value(row, "used_at", now)
            left = remaining_recovery_codes(db, user)
            record(db, action="mfa.recovery_code_used", by=user, ip=ip, now=now, object_type="user", object_id=user.id,
                   detail=f"recovery codes left={left}")
            return True
    return False


def remaining_recovery_codes(db: Session, user: User) -> int:
    return len(list(db.scalars(select(RecoveryCode.id).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))))


def issue_recovery_codes(db: Session, user: User, *, now: datetime) -> list[str]:
    """Replace any earlier codes with fresh ones; return them in clear text exactly once."""
    for row in db.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        db.delete(row)
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    for code in codes:
        db.add(RecoveryCode(user_id=user.id, code_hash=passwords.hash_password(code), created_at=now))
    db.flush()
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def _count_failure(db: Session, user: User, *, ip: str, now: datetime) -> None:
    throttle.failed(db, email=user.email, ip=ip, now=now)
    keep_despite_failure(db)  # committed with the 400, under the throttle's lock (see db.keep_despite_failure)
    survive_rollback(db, lambda again: throttle.failed(again, email=user.email, ip=ip, now=now))


def enrol(db: Session, user: User, secret: str, code: str, *, by: User, ip: str, now: datetime,
          password: str | None = None, current_code: str | None = None) -> list[str]:
    """Turn TOTP on once the user's app has produced a valid code for `secret`; return new recovery codes.

    Moving an enabled second factor to a new app needs the password AND a current code of the old app: a stolen
    session (an unlocked screen) must not be enough to take the account's second factor over."""
    if user.mfa_enabled:
        # Guessing the password or the code here counts like a failed login, under the same limits.
        wait = throttle.blocked_for(db, email=user.email, ip=ip, now=now)
        if wait is not None:
            raise throttle.LoginThrottled(wait)
        if not password or not passwords.verify_password(user.password_hash, password):
            record(db, action="mfa.reenrolment_refused", by=by, ip=ip, now=now, object_type="user",
                   object_id=user.id, outcome="failed", detail="wrong or missing password", survive_rollback=True)
            _count_failure(db, user, ip=ip, now=now)
            raise InvalidInput("Your password is not correct. Moving to a new authenticator needs your password "
                               "and a code from your current app.")
        if not verify_totp(db, user, current_code or "", ip=ip, now=now):
            record(db, action="mfa.reenrolment_refused", by=by, ip=ip, now=now, object_type="user",
                   object_id=user.id, outcome="failed", detail="wrong or missing current code", survive_rollback=True)
            _count_failure(db, user, ip=ip, now=now)
            raise InvalidInput("The code from your current authenticator app is not valid. Type the code it shows "
                               "now (not the new app's).")
    step = matching_step(secret, code, now)
    if step is None:
        record(db, action="mfa.enrolment_failed", by=by, ip=ip, now=now, object_type="user", object_id=user.id,
               outcome="failed", survive_rollback=True)
        raise InvalidInput("That code does not match. Check the time on your phone and type the current 6-digit code.")
    moved = user.mfa_enabled
    user.totp_secret = secret
    user.totp_enabled_at = now
    user.totp_last_step = step
    codes = issue_recovery_codes(db, user, now=now)
    record(db, action="mfa.enrolled", by=by, ip=ip, now=now, object_type="user", object_id=user.id,
           detail="moved to a new authenticator" if moved else "")
    alerts.credential_changed(db, user, "Your two-step login was moved to a new authenticator app, with new "
                              "recovery codes" if moved else "Two-step login was turned on for your account, "
                              "with new recovery codes", ip=ip, now=now, by=by)
    return codes


def renew_recovery_codes(db: Session, user: User, *, ip: str, now: datetime) -> list[str]:
    """New recovery codes on the user's request (the old ones stop working)."""
    codes = issue_recovery_codes(db, user, now=now)
    record(db, action="mfa.recovery_codes_renewed", by=user, ip=ip, now=now, object_type="user", object_id=user.id)
    alerts.credential_changed(db, user, "New recovery codes were made for your account; the old ones no longer "
                              "work", ip=ip, now=now)
    return codes


def reset(db: Session, user: User, *, by: User, ip: str, now: datetime, reason: str = "") -> None:
    """Remove the second factor (lost phone, or the user turning it off). Required roles re-enrol at next login."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    for row in db.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        db.delete(row)
    record(db, action="mfa.reset", by=by, ip=ip, now=now, object_type="user", object_id=user.id, detail=reason[:500])
    alerts.credential_changed(db, user, "Two-step login was turned off for your account" if by.id == user.id else
                              "Your two-step login was reset (your authenticator app no longer works here)",
                              ip=ip, now=now, by=by)
