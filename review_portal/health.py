"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it can do its work).

Load balancers take an instance out of rotation when /readyz fails, and restart it only when
/healthz fails. Neither carries data nor needs a login.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks = {}
    for name, check in (("database", _check_database), ("storage", _check_storage), ("queue", _check_queue)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason goes to the log
            current_app.logger.warning("readiness check failed", extra={"check": name, "error": f"{type(exc).__name__}: {exc}"})
            checks[name] = "failed"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), (200 if ready else 503)


def _check_database():
    with current_app.extensions["db_engine"].connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_storage():
    current_app.extensions["storage"].check_ready()


def _check_queue():
    current_app.extensions["jobs"].check_ready()
