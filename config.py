"""Configuration classes: the only place that reads the environment."""
from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    INSTANCE_DIR = Path(os.environ.get("PORTAL_INSTANCE_DIR", BASE_DIR / "instance"))
    DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'portal.db'}")
    STORAGE_DIR = Path(os.environ.get("STORAGE_DIR", INSTANCE_DIR / "storage"))
    # A whole CT study fits; anything larger is refused with 413 before it reaches the disk.
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_UPLOAD_BYTES", 2 * 1024**3))
    # Werkzeug keeps small form parts in memory; anything bigger is spooled to a temp file.
    MAX_FORM_MEMORY_SIZE = 1024 * 1024
    # A CT/MR study is often thousands of files in one upload (Werkzeug's default allows 1000 parts).
    MAX_FORM_PARTS = 20000
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    # Crash leftovers: spooled uploads and scratch folders in the store's temporary area older than this are
    # removed at start-up and by `flask storage-sweep` (cron, hourly). It must outlast the longest upload plus
    # its ingest: MAX_UPLOAD_BYTES (2 GB) at a slow 1 Mbit/s link takes about 4.5 hours, hence 6 hours.
    SPOOL_MAX_AGE_MINUTES = float(os.environ.get("SPOOL_MAX_AGE_MINUTES", 360))
    SPOOL_SWEEP_ON_START = os.environ.get("SPOOL_SWEEP_ON_START", "1") == "1"
    # Sessions live on the server (auth.sessions); these end them. The idle timeout is the HIPAA automatic logoff.
    SESSION_IDLE_MINUTES = int(os.environ.get("SESSION_IDLE_MINUTES", 15))
    SESSION_ABSOLUTE_HOURS = int(os.environ.get("SESSION_ABSOLUTE_HOURS", 12))
    # Coordinators and admins see open cases and those closed within this many days; older ones need
    # emergency access ("break the glass"), which lasts EMERGENCY_ACCESS_MINUTES.
    ARCHIVE_AFTER_DAYS = int(os.environ.get("ARCHIVE_AFTER_DAYS", 30))
    EMERGENCY_ACCESS_MINUTES = int(os.environ.get("EMERGENCY_ACCESS_MINUTES", 60))
    # Closed cases are purged (files and rows, never the audit trail) this many days after closing.
    RETENTION_DAYS = int(os.environ.get("RETENTION_DAYS", 3650))
    # Endpoint names other parts of the portal make public (e.g. letter verification); see security.py.
    PUBLIC_ENDPOINTS_EXTRA: tuple[str, ...] = ()
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None  # tied to the session instead, so long uploads don't expire
    DEMO_DATA_ALLOWED = True
    PRODUCTION = False
    PAGE_SIZE = 25
    # IssuerOfPatientID values of outside sites whose Patient IDs are not our MRNs: such an ID is shown as an
    # "outside ID", not flagged as another patient (imaging.identity). Comma-separated in the environment.
    PATIENT_ID_ACCEPTED_ISSUERS = tuple(i.strip() for i in os.environ.get("PATIENT_ID_ACCEPTED_ISSUERS", "").split(",")
                                        if i.strip())
    # Reverse proxies in front of the portal that set X-Forwarded-For/-Proto (docs/deploy.md). 0 (the default)
    # ignores those headers: a client could write any address into them. With N, the address N hops back in
    # X-Forwarded-For is the client's (throttling, audit rows, rate limits). Never more than really exist.
    TRUSTED_PROXY_HOPS = int(os.environ.get("PORTAL_TRUSTED_PROXY_HOPS", 0))
    # Blob storage: "local" (STORAGE_DIR) or "s3" (any S3-compatible store; STORAGE_DIR then holds a verified read cache).
    STORAGE_BACKEND = os.environ.get("STORAGE_BACKEND", "local")
    S3_BUCKET = os.environ.get("S3_BUCKET", "")
    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL", "")
    S3_REGION = os.environ.get("S3_REGION", "")
    S3_ACCESS_KEY_ID = os.environ.get("S3_ACCESS_KEY_ID", "")
    S3_SECRET_ACCESS_KEY = os.environ.get("S3_SECRET_ACCESS_KEY", "")
    # DICOM files leave the portal (WADO-RS) in chunks of this size, hashed as they stream; one chunk is held back
    # until the digest is known, so a stream costs about two chunks of memory.
    DICOM_STREAM_CHUNK_BYTES = int(os.environ.get("DICOM_STREAM_CHUNK_BYTES", 1024 * 1024))
    # Background jobs run in RQ workers when a Redis URL is set, inline otherwise.
    REDIS_URL = os.environ.get("REDIS_URL", "")
    JOB_QUEUE = os.environ.get("JOB_QUEUE", "portal")
    JOB_MODULES = [m for m in os.environ.get("PORTAL_JOB_MODULES", "").split(",") if m]
    # The audit trail's hash chain is sealed off the request path, by a thread in every process (audit.sealer):
    # a committed event is unsealed for at most this many seconds plus one seal (docs/deploy.md). 0 = no thread.
    AUDIT_SEAL_INTERVAL_SECONDS = float(os.environ.get("AUDIT_SEAL_INTERVAL_SECONDS", 2))
    # "try": the writer also seals right after its commit when nobody else is sealing (never waits); "off": only
    # the periodic sealer seals (the cheapest request).
    AUDIT_SEAL_AFTER_COMMIT = os.environ.get("AUDIT_SEAL_AFTER_COMMIT", "off")
    # Database pool per process (gunicorn worker); PostgreSQL only. At least one connection per gunicorn thread
    # (GUNICORN_THREADS, gunicorn.conf.py), so no request thread waits for a connection another thread holds.
    DB_POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", max(5, int(os.environ.get("GUNICORN_THREADS", 4)) + 1)))
    DB_MAX_OVERFLOW = int(os.environ.get("DB_MAX_OVERFLOW", 10))
    # One JSON object per log line (for log shippers); plain text in development.
    LOG_JSON = os.environ.get("LOG_JSON", "0") == "1"
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    ALLOW_SQLITE_IN_PRODUCTION = os.environ.get("ALLOW_SQLITE_IN_PRODUCTION", "0") == "1"
    # What an uploaded file may declare (imaging/limits.py; each is checked against the bytes really there).
    # The IMAGE_ limits may be lowered, never raised above their defaults: frames per file, samples and bytes
    # per frame, and bytes a deflated dataset may inflate to.
    IMAGE_MAX_FRAMES = int(os.environ.get("IMAGE_MAX_FRAMES", 20_000))
    IMAGE_MAX_FRAME_PIXELS = int(os.environ.get("IMAGE_MAX_FRAME_PIXELS", 64 * 1024 * 1024))
    IMAGE_MAX_FRAME_BYTES = int(os.environ.get("IMAGE_MAX_FRAME_BYTES", 256 * 1024 * 1024))
    IMAGE_MAX_INFLATED_BYTES = int(os.environ.get("IMAGE_MAX_INFLATED_BYTES", 512 * 1024 * 1024))
    # Zip uploads: entries; bytes of one entry and of the archive once extracted; compression ratio of an entry
    # (once it passes ZIP_RATIO_MIN_BYTES) and of the whole archive (once it passes ZIP_ARCHIVE_RATIO_MIN_BYTES).
    ZIP_MAX_ENTRIES = int(os.environ.get("ZIP_MAX_ENTRIES", 20_000))
    ZIP_MAX_ENTRY_BYTES = int(os.environ.get("ZIP_MAX_ENTRY_BYTES", 2 * 1024**3 - 1))
    ZIP_MAX_TOTAL_BYTES = int(os.environ.get("ZIP_MAX_TOTAL_BYTES", 4 * 1024**3))
    ZIP_MAX_RATIO = int(os.environ.get("ZIP_MAX_RATIO", 200))
    ZIP_RATIO_MIN_BYTES = int(os.environ.get("ZIP_RATIO_MIN_BYTES", 1024 * 1024))
    ZIP_MAX_ARCHIVE_RATIO = int(os.environ.get("ZIP_MAX_ARCHIVE_RATIO", 100))
    ZIP_ARCHIVE_RATIO_MIN_BYTES = int(os.environ.get("ZIP_ARCHIVE_RATIO_MIN_BYTES", 64 * 1024 * 1024))
    # Decoding uploaded images (the ingest check, thumbnails, a slice's first rendering) runs in a small pool of
    # worker processes with hard limits (review_portal.sandbox): a file needing more memory beyond the worker's
    # loaded code, or more wall-clock time, is refused with that reason and the web process carries on.
    # 512 MB is three times what the largest real frame needs while windowed (a ~20 Mpx mammogram in float64);
    # 30 s is ten times a large JPEG 2000 frame on a busy machine. SANDBOX_ENABLED=0 decodes in-process (debugging).
    SANDBOX_ENABLED = os.environ.get("SANDBOX_ENABLED", "1") == "1"
    SANDBOX_MEMORY_MB = int(os.environ.get("SANDBOX_MEMORY_MB", 512))
    SANDBOX_SECONDS = float(os.environ.get("SANDBOX_SECONDS", 30))
    SANDBOX_WORKERS = int(os.environ.get("SANDBOX_WORKERS", 2))
    # Loaded in each worker before its memory limit applies ("module" or "module:function").
    SANDBOX_PRELOAD: tuple[str, ...] = ("review_portal.imaging.sandboxed:warm_up",)
    # Rendered slices kept on this host's disk (STORAGE_DIR/render-cache), shared by its workers, least recently
    # used removed past this size; and each process's decoded frames of compressed images (a window dragged on
    # one slice). imaging/render_cache.py.
    RENDER_CACHE_MB = float(os.environ.get("RENDER_CACHE_MB", 512))
    FRAME_CACHE_MB = float(os.environ.get("FRAME_CACHE_MB", 64))
    # Business days a review may take, by priority.
    TURNAROUND_DAYS = {"routine": 5, "urgent": 2}
    # Days the service does not work (ISO dates), besides weekends. PORTAL_HOLIDAYS=2026-12-25,2026-12-28 overrides.
    HOLIDAYS = tuple(d.strip() for d in os.environ.get(
        "PORTAL_HOLIDAYS", "2026-12-25,2026-12-28,2027-01-01,2027-04-02,2027-04-05,2027-05-03,2027-05-31,2027-08-30,2027-12-27,2027-12-28"
    ).split(",") if d.strip())
    # A review is "near due" when fewer business hours than this remain.
    SLA_NEAR_DUE_HOURS = 24
    # An offer nobody has accepted or declined after this many business hours: `flask sla-check` reminds the
    # reviewer once, and after as many again escalates to the coordinators to reassign it. 0 turns this off.
    OFFER_REMINDER_HOURS = int(os.environ.get("OFFER_REMINDER_HOURS", 24))
    # Questions the referring physician may ask after the letter (MyConsult allows three).
    FOLLOW_UP_QUESTIONS_MAX = 3
    # Days after the first letter is delivered when the referring physician is asked what happened
    # (recommendation followed? final diagnosis? which opinion was confirmed?). `flask outcomes-due` asks.
    OUTCOME_FOLLOW_UP_DAYS = int(os.environ.get("OUTCOME_FOLLOW_UP_DAYS", 90))
    # E-mail: notifications and account mail (reset, invitation) share these settings. Off by default:
    # notifications are written to the log and account mail is kept in app.extensions["outbox"].
    MAIL_ENABLED = os.environ.get("MAIL_ENABLED", "") == "1"
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "localhost")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", 25))
    MAIL_USE_STARTTLS = os.environ.get("MAIL_USE_STARTTLS", "") == "1"
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME", "")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD", "")
    MAIL_SENDER = os.environ.get("MAIL_SENDER", "second-opinions@northbridge.example")
    MAIL_TIMEOUT_SECONDS = 10
    # Links in e-mails and in `flask sla-check` notifications point here.
    PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:5000")
    INSTITUTION = {
        "name": "Northbridge Cancer Centre",
        "address_lines": ["Second Opinion Service", "1 Harbour Road", "Northbridge NB1 2CC"],
        "phone": "+44 20 0000 0000",
        "logo": "img/letterhead-logo.svg",
    }


class DevelopmentConfig(Config):
    pass


class TestConfig(Config):
    TESTING = True
    WTF_CSRF_ENABLED = False
    SECRET_KEY = "test-secret"
    # Cheap argon2 parameters: the hashing code path is the same, only slower in production.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 1024
    MAIL_ENABLED = False
    PORTAL_BASE_URL = "http://portal.test"
    # No sealer thread in tests (it would race the statement counts and the per-test databases); the writer seals
    # after its commit when nobody else is sealing, and tests of the periodic sealer turn it on themselves.
    AUDIT_SEAL_INTERVAL_SECONDS = 0
    AUDIT_SEAL_AFTER_COMMIT = "try"
    # Small limits, so the limit tests stay fast; one worker per test process.
    SANDBOX_MEMORY_MB = 64
    SANDBOX_SECONDS = 20
    SANDBOX_WORKERS = 1


class ProductionConfig(Config):
    PRODUCTION = True
    DEMO_DATA_ALLOWED = False
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    # __Host- cookies are only accepted over HTTPS, for this exact host, path / (no subdomain can plant one).
    SESSION_COOKIE_NAME = "__Host-session"
    SECRET_KEY = os.environ.get("SECRET_KEY", "")
    DEBUG = os.environ.get("FLASK_DEBUG", "0") == "1"
    LOG_JSON = os.environ.get("LOG_JSON", "1") == "1"


def config_from_env():
    name = os.environ.get("PORTAL_CONFIG", "development")
    return {"development": DevelopmentConfig, "production": ProductionConfig, "test": TestConfig}[name]
