"""Structured logs: one JSON object per line, each carrying the request id.

The request id comes from the proxy's X-Request-ID header when it is well-formed (so one id
follows a request through the load balancer, the app and the worker), or is made here; it is
sent back in the response header. Every request writes one access line with its duration.
Patient data never goes into logs: paths carry only numeric ids.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import datetime, timezone

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


def configure(json_lines: bool, level: str = "INFO") -> None:
    """Install one stderr handler on the root logger (idempotent across app instances)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_portal", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._portal = True
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonFormatter() if json_lines else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # WeasyPrint logs every layout step at INFO; keep its warnings only.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


access_log = logging.getLogger("review_portal.access")


def init_app(app) -> None:
    from flask import g, request

    if not app.testing:
        configure(app.config.get("LOG_JSON", False), app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def _assign_request_id():
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        g.request_id = rid
        g.request_started = time.perf_counter()
        request_id_var.set(rid)

    @app.after_request
    def _log_request(response):
        rid = g.get("request_id", "")
        if rid:
            response.headers["X-Request-ID"] = rid
        started = g.get("request_started")
        if started is not None and request.endpoint != "static":
            from flask_login import current_user

            access_log.info("request", extra={
                "request_id": rid, "method": request.method, "path": request.path, "endpoint": request.endpoint or "",
                "status": response.status_code, "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": getattr(current_user, "id", None) if current_user and current_user.is_authenticated else None,
                "remote_addr": request.remote_addr or "",
            })
        return response
