"""The Alembic migrations build the same schema as the models, from an empty database."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from review_portal.db import Base, import_models
from review_portal.migrations_runner import upgrade


def test_migrations_create_every_table_and_match_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    upgrade(url)
    import_models()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_is_repeatable(tmp_path):
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    upgrade(url)
    upgrade(url)  # a second `make run` must not fail
