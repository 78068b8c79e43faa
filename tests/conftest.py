"""Shared fixtures: an app with its own database and blob store per test, users per role,
and `make_case(status)` that drives a real case through the services to any state.

The database is SQLite (a file per test) unless PORTAL_TEST_DB=postgresql: then a throw-away
PostgreSQL cluster is started once per session (tests/servers.py), the schema is created once,
and every table is emptied after each test, so each test still starts from an empty database.
`pg_app` is an app on that PostgreSQL whatever PORTAL_TEST_DB says (concurrency tests need it).
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from config import TestConfig
from review_portal import create_app
from review_portal.auth.models import Institution, Role
from review_portal.auth.services import create_user
from review_portal.cases.lifecycle import CaseStatus
from review_portal.cases.services import HistoryItem, Referral
from review_portal.uploads import UploadedFile
from review_portal.workflow.referrals import submit_referral
from review_portal.db import create_all, session as db_session

PASSWORD = "correct-horse-battery"
# Every user whose role requires a second factor is enrolled with this TOTP secret (base32).
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # a Monday
INSTITUTION = TestConfig.INSTITUTION
TURNAROUND = TestConfig.TURNAROUND_DAYS


def testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path, f"pydicom test file {name} missing"
    return Path(path)


TEST_DATABASE = os.environ.get("PORTAL_TEST_DB", "sqlite")
assert TEST_DATABASE in ("sqlite", "postgresql"), "PORTAL_TEST_DB must be sqlite or postgresql"


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole session (initdb + pg_ctl in a temp dir, free port)."""
    from tests.servers import start_postgres

    server = start_postgres()
    yield server
    server.stop()


class _PgTestDatabase:
    """One database with the schema created once; `empty()` truncates every table between tests."""

    def __init__(self, url: str):
        from review_portal.db import Base, make_engine

        self.url = url
        self.engine = make_engine(url, pool_size=1, max_overflow=0)
        create_all(self.engine)
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        self._truncate = f"TRUNCATE {names} RESTART IDENTITY CASCADE"

    def empty(self) -> None:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            # A session object a test kept after its request ended may still hold a transaction open;
            # the test is over, so end its connection rather than wait on its locks.
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            conn.execute(text(self._truncate))


@pytest.fixture(scope="session")
def pg_database(postgres):
    db = _PgTestDatabase(postgres.create_database("portal_test"))
    yield db
    db.engine.dispose()


class FrozenClock:
    """The test's handle on review_portal.clock: `set(dt)` stops time at dt, `advance(...)` moves it on,
    `now()` reads it. Everything that calls clock.utcnow() (routes, CLI commands, sessions) sees the same moment."""

    def set(self, at: datetime) -> datetime:
        from review_portal import clock

        clock.freeze(at)
        return clock.utcnow()

    def advance(self, delta: timedelta | None = None, **kwargs) -> datetime:
        """`advance(timedelta(minutes=5))` or `advance(minutes=5)`. Returns the new moment."""
        if (delta is None) == (not kwargs):
            raise TypeError("advance() takes a timedelta or timedelta keyword arguments, not both or neither")
        return self.set(self.now() + (delta if delta is not None else timedelta(**kwargs)))

    def now(self) -> datetime:
        from review_portal import clock

        return clock.utcnow()


@contextmanager
def frozen_clock():
    """The clock stopped at the real current moment, and running again on the way out whatever happened."""
    from review_portal import clock as clock_module

    clock_module.freeze(datetime.now(timezone.utc))
    try:
        yield FrozenClock()
    finally:
        clock_module.unfreeze()


@pytest.fixture
def clock():
    """Frozen time for one test: stopped at the real current moment when the test starts, moved only by
    `set()`/`advance()`, and running again after the test.

    Log in (a TOTP code) before moving the clock far: pyotp makes the code from the real time and the
    portal checks it against the frozen one."""
    with frozen_clock() as frozen:
        yield frozen


def _make_app(url: str, tmp_path: Path, **overrides):
    return create_app(TestConfig, DATABASE_URL=url, STORAGE_DIR=str(tmp_path / "store"), **overrides)


def _close_app(app) -> None:
    db_session.remove()
    app.extensions["db_engine"].dispose()


@pytest.fixture
def app_overrides():
    """Extra config for `app`; a test module overrides this fixture (e.g. S3 storage, a Redis queue)."""
    return {}


@pytest.fixture
def pg_app(pg_database, tmp_path, app_overrides):
    app = _make_app(pg_database.url, tmp_path, **app_overrides)
    yield app
    _close_app(app)
    pg_database.empty()


@pytest.fixture
def app(request, tmp_path, app_overrides):
    if TEST_DATABASE == "postgresql":
        yield request.getfixturevalue("pg_app")
        return
    app = _make_app(f"sqlite:///{tmp_path / 'test.db'}", tmp_path, **app_overrides)
    create_all(app.extensions["db_engine"])
    # No app context is held open here: requests must each get their own `g` (flask-login caches the user there).
    yield app
    _close_app(app)


@pytest.fixture
def db(app):
    s = db_session()
    yield s
    s.close()  # requests remove() the registry's session, not this object: release its connection too


@pytest.fixture
def storage(app):
    return app.extensions["storage"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def users(db):
    """One user per role, plus look-alikes to prove object-level checks (same role, different person)."""
    return make_users(db)


def make_users(db):
    """The `users` fixture's people, for fixtures of a wider scope (tests/browser/test_accessibility.py)."""
    centre = Institution(name="Reviewing Centre")
    hospital = Institution(name="Referring Hospital", address="1 Test Street\nTestville")
    other = Institution(name="Other Clinic")
    db.add_all([centre, hospital, other])
    db.flush()
    from review_portal.cases.disciplines import seed_disciplines

    seed_disciplines(db)  # the schema here comes from the models; the migration seeds a real database

    def make(key, role, inst, **kw):
        return create_user(db, email=f"{key}@test.example", name=key.replace("_", " ").title(), password=PASSWORD,
                           role=role, now=NOW, institution=inst, **kw)

    people = {
        "referring": make("referring", Role.REFERRING, hospital, credentials="MD"),
        "other_referring": make("other_referring", Role.REFERRING, other),
        "reviewer": make("reviewer", Role.REVIEWER, centre, specialty="medical_oncology", sites=["breast", "thoracic"], credentials="MD"),
        "other_reviewer": make("other_reviewer", Role.REVIEWER, centre, specialty="medical_oncology", sites=["gi"]),
        "radiologist": make("radiologist", Role.REVIEWER, centre, specialty="radiology", sites=["breast", "thoracic"]),
        "coordinator": make("coordinator", Role.COORDINATOR, centre),
        "admin": make("admin", Role.ADMIN, centre),
    }
    from review_portal.assignment.models import ReviewerProfile

    db.add(ReviewerProfile(user_id=people["radiologist"].id, reading_areas=["breast", "chest"], capacity=8))
    for person in people.values():
        if person.mfa_required:
            person.totp_secret, person.totp_enabled_at = TOTP_SECRET, NOW
    db.commit()
    return people


def totp_now() -> str:
    import pyotp

    return pyotp.TOTP(TOTP_SECRET).now()


def _allow_code_reuse(app, email):
    """Logging the same test user in twice within 30 s would be a (correctly refused) TOTP replay;
    the helpers are about getting in, so they forget the last used step. Replay has its own tests."""
    from sqlalchemy import text

    with app.extensions["db_engine"].begin() as conn:
        conn.execute(text("UPDATE users SET totp_last_step = NULL WHERE email = :e"), {"e": email})


def login_client(app, client, email, password=PASSWORD):
    """Password, then the TOTP step when the account has one. Returns the last response."""
    r = client.post("/login", data={"email": email, "password": password})
    if r.status_code == 302 and r.headers["Location"].endswith("/login/mfa"):
        _allow_code_reuse(app, email)
        r = client.post("/login/mfa", data={"code": totp_now()})
    return r


def referral(**overrides) -> Referral:
    values = dict(
        patient_name="Test Patient", patient_dob=date(1960, 1, 2), patient_sex="female", patient_mrn="MRN-1",
        question="Do you agree?", diagnosis_in_question="Breast carcinoma, cT2N0.", plan_in_question="Surgery first.",
        disciplines=("medical_oncology",), cancer_site="breast", priority="routine",
        history=[HistoryItem(date(2026, 10, 1), "pathology", "Core biopsy: IDC grade 2.")],
    )
    if overrides.get("review_type", "oncology_opinion") != "oncology_opinion" and "disciplines" not in overrides:
        values["disciplines"] = ()  # "radiology_read" and "pathology_review" name their discipline
    values.update(overrides)
    return Referral(**values)


@pytest.fixture
def make_case(db, storage, users, tmp_path):
    """Build a case through the real services and stop at `status` (see case_maker)."""
    return case_maker(db, storage, users, tmp_path)


def case_maker(db, storage, users, tmp_path):
    """Build a case through the real services and stop at `status`.

    "assigned" is offered to the routed reviewer; every later state has the offer accepted first.
    "triage" needs a case nobody covers (pass cancer_site="pediatric").
    """
    from review_portal.workflow.assignments import accept_offer
    from review_portal.cases.services import cancel_case, close_case, withdraw_case
    from review_portal.letters.services import acknowledge_letter
    from review_portal.messaging.services import request_information
    from review_portal.opinions.services import OpinionDraft, save_draft
    from review_portal.workflow.signing import sign_and_issue_letter

    later = {"in_review", "awaiting_information", "opinion_signed", "letter_delivered", "acknowledged", "closed"}

    def _make(status: str = "assigned", *, scans: list[str] = (), by=None, confirm_identity: bool = True, **overrides):
        by = by or users["referring"]
        uploads = []
        for n, name in enumerate(scans):
            dest = tmp_path / f"scan{n}-{name}"
            shutil.copy(testdata(name), dest)
            uploads.append(UploadedFile(name, dest))
        case, _ = submit_referral(db, storage, referral(**overrides), documents=[], scans=uploads, by=by, ip="127.0.0.1",
                                  now=NOW, turnaround_days=TURNAROUND)
        if scans and confirm_identity:
            confirm_test_scans(db, case, users["coordinator"])
        ctx = {"ip": "127.0.0.1"}
        if status in (CaseStatus.SUBMITTED, CaseStatus.TRIAGE):
            if case.status != "triage":
                raise AssertionError("a routable case goes straight to a reviewer; pass cancer_site='pediatric'")
        elif status == CaseStatus.WITHDRAWN:
            withdraw_case(db, case, reason="test", by=by, now=NOW, **ctx)
        elif status == CaseStatus.CANCELLED:
            cancel_case(db, case, reason="duplicate referral", by=users["coordinator"], now=NOW, **ctx)
        elif status in later:
            reviewer = case.reviewer
            accept_offer(db, case.active_assignment, by=reviewer, now=NOW + timedelta(minutes=10), **ctx)
            if status == CaseStatus.AWAITING_INFORMATION:
                request_information(db, case, items=["records"], detail="Please send the operative note.",
                                    by=reviewer, now=NOW + timedelta(minutes=30), **ctx)
            elif status != CaseStatus.IN_REVIEW:
                save_draft(db, case, OpinionDraft("refined", "modify", "Refined diagnosis.", "Modified plan.",
                                                  "Because of the biopsy.", "HER2 ISH."),
                           based_on_version=None, by=reviewer, now=NOW + timedelta(hours=1), **ctx)
                # Signing issues the letter in the same step: "opinion signed" is transient.
                sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                                      by=reviewer, now=NOW + timedelta(hours=2), **ctx)
                if status in (CaseStatus.ACKNOWLEDGED, CaseStatus.CLOSED):
                    acknowledge_letter(db, case, by=by, now=NOW + timedelta(hours=3), **ctx)
                if status == CaseStatus.CLOSED:
                    close_case(db, case, by=by, now=NOW + timedelta(hours=4), **ctx)
        db.commit()
        return case

    return _make


def confirm_test_scans(db, case, by) -> None:
    """pydicom's test files name their own patients (CompressedSamples^CT1...): a case built for another purpose
    confirms them as its patient's, as a coordinator would. `make_case(..., confirm_identity=False)` leaves the
    identity questions open (tests/services/test_identity_at_ingest.py)."""
    from review_portal.imaging.identity_services import confirm_same_patient, open_mismatches

    for study_id in sorted({m.study_id for m in open_mismatches(db, case.id)}):
        confirm_same_patient(db, case, study_id, reason="pydicom test file", by=by, ip="127.0.0.1", now=NOW)


class Auth:
    def __init__(self, client, app=None):
        self.client = client
        self.app = app

    def login(self, user_or_email, password=PASSWORD):
        email = getattr(user_or_email, "email", user_or_email)
        return login_client(self.app, self.client, email, password)

    def logout(self):
        return self.client.post("/logout")


@pytest.fixture
def auth(app, client):
    return Auth(client, app)


@pytest.fixture
def login_as(app, users):
    """A fresh logged-in test client for the given role key."""
    def _login(key):
        c = app.test_client()
        r = login_client(app, c, users[key].email)
        assert r.status_code == 302 and "/login" not in r.headers["Location"], r.data
        return c
    return _login


login_client.__test__ = False
make_users.__test__ = case_maker.__test__ = confirm_test_scans.__test__ = False
testdata.__test__ = False  # a helper, not a test, when imported into test modules


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3-compatible server (`moto_server`), in its own process on a free port."""
    from tests.servers import start_s3

    server = start_s3()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture(scope="session")
def redis_server():
    """Debian's redis-server on a free port, no persistence."""
    from tests.servers import start_redis

    server = start_redis()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.stop()
