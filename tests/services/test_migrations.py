"""The Alembic migrations build the same schema as the models, from an empty database,
on SQLite and on PostgreSQL (a real server started by the test session)."""
import itertools

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

import review_portal.models  # noqa: F401  (registers every table)
from review_portal.db import Base
from review_portal.migrations_runner import alembic_config, upgrade

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    postgres = request.getfixturevalue("postgres")
    name = f"migrate_{next(_names)}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


def test_migrations_create_every_table_and_match_the_models(empty_database_url):
    url = empty_database_url
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_is_repeatable(empty_database_url):
    url = empty_database_url
    upgrade(url)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO institutions (name, address) VALUES ('Kept Hospital', '')"))
            tables_before = set(inspect(conn).get_table_names())
        upgrade(url)  # a second `make run` must not fail, nor change or empty anything
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
            assert set(inspect(conn).get_table_names()) == tables_before
            assert conn.execute(text("SELECT name FROM institutions")).scalars().all() == ["Kept Hospital"]
    finally:
        engine.dispose()
