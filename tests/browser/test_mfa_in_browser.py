"""An invited referring physician turns on two-step login from the Security page, in chromium."""
import re

import pyotp
import pytest
import segno
from sqlalchemy import select

from review_portal.auth.mfa import provisioning_uri
from review_portal.auth.models import RecoveryCode, User
from review_portal.auth.services import invite_user
from review_portal.clock import utcnow
from review_portal.notifications.models import Notification
from tests.conftest import _allow_code_reuse

pytestmark = pytest.mark.browser

EMAIL = "new.referrer@test.example"
NEW_PASSWORD = "my-first-portal-passphrase"


def test_invited_referrer_enrols_totp_sees_recovery_codes_and_logs_in_with_it(app, live_server, page, db, users):
    base = live_server
    _, token = invite_user(db, email=EMAIL, name="Nadia Referrer", role="referring", by=users["admin"], ip="",
                           now=utcnow(), institution=users["referring"].institution)
    db.commit()

    # The invitation: choose a password, then log in (two-step login is optional for referring physicians).
    page.goto(f"{base}/invitation/{token}")
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/login")
    page.fill("#email", EMAIL)
    page.fill("#password", NEW_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/cases")

    # Security page → set up.
    page.click("nav.mainnav >> text=Security")
    page.wait_for_url(f"{base}/account/security")
    assert "Off." in page.inner_text("main")
    page.click("text=Set up two-step login")
    page.wait_for_url(f"{base}/account/mfa/enrol")
    secret = page.inner_text("code.totp-secret").strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    # "Scanning" the QR: the image shown is exactly the otpauth:// URI for this account and this key, made here.
    qr_src = page.get_attribute("img.qr", "src")
    assert qr_src == segno.make(provisioning_uri(secret, EMAIL), error="m").svg_data_uri(scale=5, border=2)
    assert page.evaluate("document.querySelector('img.qr').naturalWidth") > 0  # the browser decoded and drew it

    # A wrong code is refused on the same page; the phone's current code turns it on.
    page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.click("main button[type=submit]")
    assert "does not match" in page.inner_text("main")
    secret_after_error = page.inner_text("code.totp-secret").strip()
    assert secret_after_error == secret  # same key: the app the user just set up keeps working
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_selector("ul.recovery-codes")
    codes = page.locator("ul.recovery-codes li").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", c.strip()) for c in codes)
    page.click("text=I have saved them")
    page.wait_for_url(f"{base}/account/security")
    assert "10 recovery codes left" in page.inner_text("main")

    db.expire_all()
    user = db.scalar(select(User).where(User.email == EMAIL))
    assert user.mfa_enabled and user.totp_secret == secret
    assert len(db.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()) == 10
    assert db.scalar(select(Notification).where(Notification.user_id == user.id, Notification.kind == "account_security"))

    # Log out; the password alone no longer gets in, the code from the phone does.
    page.click("text=Log out")
    page.wait_for_url(f"{base}/login")
    page.fill("#email", EMAIL)
    page.fill("#password", NEW_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/login/mfa")
    assert page.goto(f"{base}/cases").url.startswith(f"{base}/login")  # half-way in is not in
    page.goto(f"{base}/login")
    page.fill("#email", EMAIL)
    page.fill("#password", NEW_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/login/mfa")
    _allow_code_reuse(app, EMAIL)  # the enrolment used this 30-second step a moment ago (a replay otherwise)
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/cases")
    assert "Nadia Referrer" in page.inner_text("header")
