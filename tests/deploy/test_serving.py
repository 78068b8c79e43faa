"""Readiness, request ids in JSON logs, production refusals, and `flask backup-verify`."""
import json
import logging

import pytest

from config import ProductionConfig, TestConfig
from review_portal import ConfigurationError, create_app
from review_portal.logs import JsonFormatter

GOOD_KEY = "k" * 40


def test_health_and_readiness_need_no_login(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok", "queue": "ok"}}


def test_readiness_fails_when_the_database_is_unreachable(tmp_path):
    app = create_app(TestConfig, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none",
                     STORAGE_DIR=str(tmp_path / "s"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "failed", "storage": "ok", "queue": "ok"}


def test_request_id_is_echoed_and_logged_as_json(client, caplog):
    caplog.set_level(logging.INFO, logger="review_portal.access")
    response = client.get("/healthz", headers={"X-Request-ID": "proxy-abc-12345"})
    assert response.headers["X-Request-ID"] == "proxy-abc-12345"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id; DROP"}).headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "bad id; DROP"
    record = next(r for r in caplog.records if getattr(r, "request_id", "") == "proxy-abc-12345")
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "proxy-abc-12345" and line["path"] == "/healthz" and line["status"] == 200
    assert line["level"] == "INFO" and isinstance(line["duration_ms"], float)


@pytest.mark.parametrize("overrides, message", [
    ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ({"SECRET_KEY": GOOD_KEY, "DEBUG": True}, "debug"),
    ({"SECRET_KEY": GOOD_KEY, "DATABASE_URL": "sqlite:///x.db"}, "SQLite"),
])
def test_production_refuses_unsafe_configuration(tmp_path, overrides, message):
    values = {"DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/db", "STORAGE_DIR": str(tmp_path), **overrides}
    with pytest.raises(ConfigurationError, match=message):
        create_app(ProductionConfig, **values)


def test_production_starts_when_configured_and_sqlite_only_when_allowed(tmp_path):
    app = create_app(ProductionConfig, SECRET_KEY=GOOD_KEY, DATABASE_URL="postgresql+psycopg://u@127.0.0.1:1/db",
                     STORAGE_DIR=str(tmp_path))
    assert app.config["PRODUCTION"] and not app.debug and not app.config["DEMO_DATA_ALLOWED"]
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_NAME"] == "__Host-session"
    engine = app.extensions["db_engine"]
    assert engine.url.get_backend_name() == "postgresql" and engine.url.database == "db"
    engine.dispose()

    sqlite_url = f"sqlite:///{tmp_path / 'one.db'}"
    with pytest.raises(ConfigurationError, match="SQLite"):
        create_app(ProductionConfig, SECRET_KEY=GOOD_KEY, DATABASE_URL=sqlite_url, STORAGE_DIR=str(tmp_path))
    single = create_app(ProductionConfig, SECRET_KEY=GOOD_KEY, DATABASE_URL=sqlite_url,
                        ALLOW_SQLITE_IN_PRODUCTION=True, STORAGE_DIR=str(tmp_path))
    engine = single.extensions["db_engine"]
    try:
        assert single.config["PRODUCTION"] and engine.url.get_backend_name() == "sqlite"
        assert engine.url.database == str(tmp_path / "one.db")
        ready = single.test_client().get("/readyz")  # it really serves, on that file
        assert ready.status_code == 200 and ready.get_json()["checks"]["database"] == "ok"
    finally:
        engine.dispose()


def test_backup_verify_finds_corrupt_and_missing_objects(app, db, storage, make_case):
    case = make_case("letter_delivered", scans=["CT_small.dcm"])
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["backup-verify"])
    assert ok.exit_code == 0, ok.output
    assert "Backup is consistent." in ok.output
    from review_portal.letters.services import letters_for_case

    from review_portal.imaging.services import series_of_case

    letter = letters_for_case(db, case.id)[0]

    instance = series_of_case(db, case.id)[0].instances[0]
    storage.path(letter.blob_key).write_bytes(b"bit rot")
    storage.delete(instance.blob_key)
    bad = runner.invoke(args=["backup-verify"])
    assert bad.exit_code != 0
    assert f"CORRUPT: {letter.blob_key}" in bad.output
    assert f"MISSING: instances.blob_key id={instance.id}" in bad.output
