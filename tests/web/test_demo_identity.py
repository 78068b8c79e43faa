"""The demo data has exactly one referral with an unresolved patient-identity question, which its referrer
(referrer@demo.example) and its reviewer (reviewer@demo.example) see; every other demo scan is confirmed."""
from __future__ import annotations

import pyotp
from sqlalchemy import select

from review_portal.cases.models import Case
from review_portal.db import session as db_session
from review_portal.demo import DEMO_PASSWORD, DEMO_TOTP_SECRET, seed
from review_portal.imaging.identity_lifecycle import MismatchStatus
from review_portal.imaging.models import IdentityMismatch


def demo_login(app, email):
    client = app.test_client()
    r = client.post("/login", data={"email": email, "password": DEMO_PASSWORD})
    if r.headers["Location"].endswith("/login/mfa"):
        r = client.post("/login/mfa", data={"code": pyotp.TOTP(DEMO_TOTP_SECRET).now()})
    assert r.status_code == 302 and "/login" not in r.headers["Location"], email
    return client


def test_the_demo_has_one_unresolved_identity_mismatch(app):
    db = db_session()
    assert seed(app, db)
    db.commit()
    open_cases = set(db.scalars(select(IdentityMismatch.case_id).where(IdentityMismatch.status == MismatchStatus.OPEN)))
    assert len(open_cases) == 1
    case = db.get(Case, open_cases.pop())
    assert case.patient_name == "Iris Lowell" and case.referring.email == "referrer@demo.example"
    # The demo's signed letters went out: their placeholder scans were confirmed, not left blocking.
    assert db.scalar(select(IdentityMismatch).where(IdentityMismatch.status == MismatchStatus.SAME_PATIENT)) is not None
    for email in ("referrer@demo.example", "reviewer@demo.example"):
        page = demo_login(app, email).get(f"/cases/{case.id}").get_data(as_text=True)
        assert "identity-warning" in page and "HOLLOWAY, GEORGE" in page and "EXT-4471" in page, email
