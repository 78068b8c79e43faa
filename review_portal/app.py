"""The second-opinion review portal: application factory."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, g, jsonify, render_template, request
from flask import session as flask_session
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import review_portal.models  # noqa: F401  (registers every domain's tables)
import review_portal.tasks  # noqa: F401  (registers the portal's job handlers)
from review_portal import db as database
from review_portal import storage as storage_mod
from review_portal import uploads
from review_portal.errors import ConcurrentEdit, DomainError, StoredFileCorrupt
from review_portal.notifications import alerts as notification_alerts
from review_portal.web import wants_json

ROOT = Path(__file__).resolve().parent.parent

csrf = CSRFProtect()
login_manager = LoginManager()


def create_app(config=None, **overrides) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    app.request_class = uploads.SpoolingRequest  # uploaded files stream to disk, hashed as they arrive
    if config is None:
        from config import config_from_env

        config = config_from_env()
    app.config.from_object(config)
    app.config.update(overrides)
    _check_config(app)
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops:
        # request.remote_addr becomes the client's address as the trusted proxies saw it, and request.scheme the
        # one the client used. Only the last `hops` entries are believed: a client cannot spoof its way past them.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    from review_portal.auth import passwords

    passwords.configure(app.config.get("ARGON2_TIME_COST"), app.config.get("ARGON2_MEMORY_COST"))

    from review_portal import jobs, logs, sandbox

    logs.init_app(app)
    Path(app.config["STORAGE_DIR"]).mkdir(parents=True, exist_ok=True)
    if str(app.config["DATABASE_URL"]).startswith("sqlite:///"):
        Path(app.config["DATABASE_URL"][len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    database.init_app(app)
    from review_portal import ratelimit

    ratelimit.init_app(app)  # limits shared by every worker and host (database, or Redis when configured)
    app.extensions["storage"] = storage_mod.storage_from_config(app.config)
    # A failed request (or job) deletes a blob it stored only when no committed row refers to it: the same
    # bytes may have been stored and committed meanwhile by another request (same content, same key).
    app.extensions["blob_referenced"] = review_portal.models.blob_is_referenced
    app.extensions["blob_references"] = review_portal.models.BLOB_REFERENCES  # removing a wrong patient's study
    _sweep_spool_once(app)
    jobs.init_app(app)
    sandbox.init_app(app)
    _configure_mail(app)

    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."

    @login_manager.user_loader
    def load_user(user_id: str):
        """The user of a live server-side session, or nobody (ended, idle or too old sessions log out).

        One statement per request: the user, the session and the unread-notification count (auth.sessions.
        resolve_with_user). Nothing is cached between requests, so a logout, deactivation or role change made on
        any host applies to the next request on every host."""
        from datetime import timedelta

        from review_portal.auth import sessions
        from review_portal.auth.models import User
        from review_portal.clock import utcnow
        from review_portal.notifications.services import unread_count_of

        try:
            uid = int(user_id)
        except (TypeError, ValueError):
            return None
        found = sessions.resolve_with_user(
            database.session(), flask_session.get("sid"), uid, now=utcnow(),
            idle=timedelta(minutes=app.config["SESSION_IDLE_MINUTES"]),
            absolute=timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"]),
            also=(unread_count_of(User.id),),
        )
        if found is None:
            flask_session.pop("_user_id", None)
            flask_session.pop("sid", None)
            g.session_ended = True
            return None
        user, live, (unread,) = found
        g.user_session_id = live.id  # which login session reads what (audit.services.record_image_view)
        g.unread_notifications = int(unread or 0)
        return user

    from review_portal.audit import chain, sealer

    chain.install_once(database.session, after_commit=app.config.get("AUDIT_SEAL_AFTER_COMMIT", "off"))
    # Sealing is off the request path: a thread per process seals every AUDIT_SEAL_INTERVAL_SECONDS.
    sealer.init_app(app)
    # After each seal the chain's head is anchored outside the database (audit.chain.write_anchor).
    _session_info(app, audit_anchor_store=app.extensions["storage"])
    _session_info(app, patient_id_accepted_issuers=tuple(app.config.get("PATIENT_ID_ACCEPTED_ISSUERS") or ()))
    _register_blueprints(app)
    notification_alerts.connect()
    _register_request_boundary(app)
    _register_error_handlers(app)
    _register_template_helpers(app)

    from review_portal import cli

    cli.register(app)
    return app


class ConfigurationError(RuntimeError):
    """The configuration is unsafe for where it is being used; the app refuses to start."""


def _check_config(app: Flask) -> None:
    try:
        hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    except (TypeError, ValueError):
        hops = -1
    if not 0 <= hops <= 10:
        raise ConfigurationError("TRUSTED_PROXY_HOPS (PORTAL_TRUSTED_PROXY_HOPS) is the number of reverse proxies in "
                                 "front of the portal: a whole number from 0 to 10.")
    if app.config.get("PRODUCTION"):
        key = app.config.get("SECRET_KEY") or ""
        if not key or key in ("dev-only-not-secret", "test-secret") or len(key) < 32:
            raise ConfigurationError("Production needs a SECRET_KEY of at least 32 random characters "
                                     "(python -c 'import secrets; print(secrets.token_hex(32))').")
        if app.debug or app.config.get("DEBUG"):
            raise ConfigurationError("Production refuses to run with debug on.")
        if str(app.config.get("DATABASE_URL", "")).startswith("sqlite") and not app.config.get("ALLOW_SQLITE_IN_PRODUCTION"):
            raise ConfigurationError("Production refuses SQLite: set DATABASE_URL=postgresql+psycopg://... "
                                     "(or ALLOW_SQLITE_IN_PRODUCTION=1 for a single-machine install).")
        if app.config.get("STORAGE_BACKEND") == "s3" and not app.config.get("S3_BUCKET"):
            raise ConfigurationError("STORAGE_BACKEND=s3 needs S3_BUCKET.")


def _register_blueprints(app: Flask) -> None:
    from review_portal.analytics.routes import bp as analytics_bp
    from review_portal.api.dicomweb import bp as dicomweb_bp
    from review_portal.api.dicomweb import store_instances
    from review_portal.api.routes import bp as api_bp
    from review_portal.api.token_routes import bp as api_tokens_bp
    from review_portal.assignment.routes import bp as assignment_bp
    from review_portal.auth.routes import bp as auth_bp
    from review_portal.cases.routes import bp as cases_bp
    from review_portal.health import bp as health_bp
    from review_portal.imaging.routes import bp as imaging_bp
    from review_portal.letters.routes import bp as letters_bp
    from review_portal.letters.summary_routes import bp as summaries_bp
    from review_portal.messaging.routes import bp as messaging_bp
    from review_portal.notifications.routes import bp as notifications_bp
    from review_portal.opinions.measurement_routes import bp as measurements_bp
    from review_portal.opinions.routes import bp as opinions_bp
    from review_portal.opinions.section_routes import bp as sections_bp
    from review_portal.outcomes.routes import bp as outcomes_bp
    from review_portal.privacy.routes import bp as privacy_bp
    from review_portal.workflow.board_routes import bp as board_bp
    from review_portal.workflow.oversight import bp as audit_bp
    from review_portal.workflow.identity_routes import bp as identity_bp
    from review_portal.workflow.review_routes import bp as reviews_bp
    from review_portal.workflow.routes import bp as workflow_bp

    for bp in (auth_bp, cases_bp, assignment_bp, imaging_bp, dicomweb_bp, opinions_bp, letters_bp, health_bp,
               messaging_bp, notifications_bp, audit_bp, privacy_bp, analytics_bp, outcomes_bp, api_bp, api_tokens_bp,
               reviews_bp, workflow_bp, identity_bp, measurements_bp):
        app.register_blueprint(bp)
    app.register_blueprint(sections_bp)  # the multidisciplinary opinion's sections
    app.register_blueprint(board_bp)  # the tumor-board agenda and section addenda
    app.register_blueprint(summaries_bp)  # the summary for the patient
    # The API authenticates by bearer token only and never by the session cookie (api.auth), so a forged
    # cross-site request has no credential to ride on: form tokens would protect nothing there.
    csrf.exempt(api_bp)
    # STOW-RS clients are not browsers and send no form token. Cross-site forgery is still blocked: a
    # multipart/related POST is not a "simple" request (the browser pre-flights it and we answer no
    # CORS), the session cookie is SameSite=Lax, and the view refuses any other content type.
    csrf.exempt(store_instances)


def _configure_mail(app: Flask) -> None:
    """Notification e-mails leave after the unit of work commits (see notifications.mail)."""
    from review_portal.notifications import mail

    mailer = mail.mailer_from_config(app.config)
    app.extensions["mailer"] = mailer
    from review_portal.imaging import limits as image_limits

    # The session's info carries what services need from the configuration (they get no app).
    database.session.configure(info={"mailer": mailer, "base_url": app.config["PORTAL_BASE_URL"].rstrip("/"),
                                     **image_limits.session_info(image_limits.from_config(app.config))})
    mail.install(database.session)


def _session_info(app: Flask, **values) -> None:
    """Add to what every new session's `info` starts with (the mailer, the anchor store...)."""
    info = dict(database.session.session_factory.kw.get("info") or {})
    info.update(values)
    database.session.configure(info=info)


def _sweep_spool_once(app: Flask) -> None:
    """Crash leftovers: spooled uploads and scratch directories older than the longest upload. Cheap (one
    directory listing); `flask storage-sweep` runs the same from cron."""
    if not app.config.get("SPOOL_SWEEP_ON_START", True):
        return
    removed = app.extensions["storage"].sweep_tmp(max_age_seconds=float(app.config["SPOOL_MAX_AGE_MINUTES"]) * 60)
    if removed:
        app.logger.info("storage sweep: removed %d leftover temporary file(s) or folder(s)", removed)


def _discard_unit_of_work(app: Flask) -> None:
    db = database.session()
    db.rollback()
    # A blob created in a failed request belongs to nothing, unless another request stored the same bytes and
    # committed: remove only what no committed row refers to, so no half-written case remains.
    storage_mod.discard_journaled(app.extensions["storage"], storage_mod.end_journal(),
                                  engine=app.extensions["db_engine"], referenced=app.extensions["blob_referenced"])
    # Failed logins, denied accesses and the like must be recorded precisely because the request failed.
    if database.redo_survivors(db):
        db.commit()


def _register_request_boundary(app: Flask) -> None:
    # The request id (shown on error pages, in every log line and audit event) is assigned by logs.init_app.
    from review_portal.security import refuse_control_characters, require_login, set_security_headers

    @app.before_request
    def _begin():
        storage_mod.begin_journal()

    app.before_request(require_login)
    # After the login check (a stranger learns nothing), before any view, form or database sees the text.
    app.before_request(refuse_control_characters)

    @app.after_request
    def _commit_or_rollback(response):
        keep = database.wants_keeping(database.session()) and response.status_code < 500  # never a crashed request
        if response.status_code >= 400 and not keep:
            _discard_unit_of_work(app)
        else:
            try:
                database.session.commit()
                storage_mod.end_journal()
            except StaleDataError:
                _discard_unit_of_work(app)
                response = _error_response(ConcurrentEdit("Someone else changed this record at the same moment. Reload and try again."))
        return set_security_headers(response)

    @app.teardown_request
    def _teardown(exc):
        if exc is not None:
            _discard_unit_of_work(app)


def _error_response(error: DomainError | HTTPException):
    if isinstance(error, DomainError):
        code, title, message = error.status_code, _TITLES.get(error.status_code, "Error"), error.message
    else:
        code, title, message = error.code or 500, error.name, error.description
    _audit_denial(code)
    if request.path.startswith("/api/"):
        from review_portal.api.errors import api_error

        return api_error(code, message)
    if wants_json():
        return jsonify(error=message, status=code, request_id=g.get("request_id", "")), code
    if getattr(error, "case", None) is not None and hasattr(error, "case"):
        from review_portal.cases.forms import EmergencyAccessForm

        return render_template("audit/emergency.html", case=error.case, message=message,
                               form=EmergencyAccessForm()), code
    return render_template("errors/error.html", code=code, title=title, message=message), code


_TITLES = {400: "Please check your input", 403: "Not allowed", 404: "Not found", 409: "Not possible right now",
           429: "Please wait", 503: "File failed its integrity check"}


def _audit_denial(code: int) -> None:
    """A logged-in user refused an object that exists (403, or 404 on a case they may not see) is audited."""
    if code not in (403, 404):
        return
    from flask_login import current_user

    from review_portal.audit.services import record
    from review_portal.cases.models import Case
    from review_portal.clock import utcnow

    if not current_user.is_authenticated:
        return
    case = None
    case_id = (request.view_args or {}).get("case_id")
    if isinstance(case_id, int) and 0 < case_id < 2**31:  # a guessed id beyond the column would overflow the driver
        case = database.session.get(Case, case_id)
    if code == 404 and case is None:
        return  # nothing there: a typo or a guess at an id that does not exist
    record(database.session(), action="access.denied", by=current_user._get_current_object(),
           ip=request.remote_addr or "", now=utcnow(), case=case, object_type="route",
           object_id=(request.endpoint or "")[:64], outcome="denied", survive_rollback=True,
           detail=f"{request.method} {request.path[:300]} -> {code}")


def _audit_corrupt_file(error: StoredFileCorrupt):
    """A stored file that no longer matches its sha256 was refused (storage logged it at ERROR): the refusal is
    audited, flagged, and kept although the request fails; the user gets a clear page, never a 500."""
    from flask_login import current_user

    from review_portal.audit.services import record
    from review_portal.cases.models import Case
    from review_portal.clock import utcnow

    case = None
    case_id = (request.view_args or {}).get("case_id")
    if isinstance(case_id, int) and 0 < case_id < 2**31:
        case = database.session.get(Case, case_id)
    by = current_user._get_current_object() if current_user.is_authenticated else None  # API: the token's owner
    record(database.session(), action="storage.integrity_failed", by=by, ip=request.remote_addr or "", now=utcnow(),
           case=case, object_type="blob", object_id=error.key, outcome="error", flagged=True, survive_rollback=True,
           detail=f"{request.method} {request.path[:300]}: the stored bytes do not match their sha256; not served")
    return _error_response(error)


def _register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, _error_response)
    app.register_error_handler(StoredFileCorrupt, _audit_corrupt_file)

    @app.errorhandler(StaleDataError)
    def _stale(_error):
        # The failed flush left the session unusable; the error page itself needs it (current user, menus).
        database.session.rollback()
        return _error_response(ConcurrentEdit("Someone else changed this record at the same moment. Reload and try again."))

    @app.errorhandler(CSRFError)
    def _csrf(error):
        return _error_response(DomainError("Your form expired or came from elsewhere. Reload the page and try again."))

    @app.errorhandler(413)
    def _too_large(error):
        limit = app.config["MAX_CONTENT_LENGTH"]
        readable = f"{limit / 1024**3:.3g} GB" if limit >= 1024**3 else f"{limit / 1024**2:.3g} MB"
        error.description = f"The upload is larger than the {readable} limit. Nothing was saved; send fewer files at once."
        return _error_response(error)

    @app.errorhandler(HTTPException)
    def _http(error):
        return _error_response(error)

    @app.errorhandler(Exception)
    def _unexpected(error):
        # The log line carries the request id and the stack trace; the user gets only the id.
        app.logger.exception("Unhandled error (request %s)", g.get("request_id", "-"))
        database.session.rollback()  # a failed flush must not break the error page too
        message = "Something went wrong on our side. Nothing was saved. The error has been logged."
        if request.path.startswith("/api/"):
            from review_portal.api.errors import api_error

            return api_error(500, message)
        if wants_json():
            return jsonify(error=message, status=500, request_id=g.get("request_id", "")), 500
        return render_template("errors/error.html", code=500, title="Unexpected error", message=message), 500


def _register_template_helpers(app: Flask) -> None:
    from flask_login import current_user

    from review_portal.cases import permissions
    from review_portal.clock import utcnow
    from review_portal.messaging import permissions as talk
    from review_portal.notifications.services import unread_count

    @app.context_processor
    def _helpers():
        unread = 0
        if current_user and getattr(current_user, "is_authenticated", False):
            # A GET reads the count loaded with the user (load_user); a change may have altered it since.
            unread = g.get("unread_notifications") if request.method in ("GET", "HEAD") else None
            if unread is None:
                unread = unread_count(database.session(), current_user)
        return {"perm": permissions, "talk": talk, "now_utc": utcnow(), "unread_notifications": unread}

    @app.template_filter("dt")
    def _format_datetime(value):
        return value.strftime("%d %b %Y %H:%M UTC") if value else ""

    @app.template_filter("d")
    def _format_date(value):
        return value.strftime("%d %b %Y") if value else ""
