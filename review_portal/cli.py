"""Command-line tasks: `flask init-db`, `flask seed-demo`, `flask sla-check`."""
from __future__ import annotations

import click
from flask import current_app

from review_portal.db import session


def register(app) -> None:
    @app.cli.command("init-db")
    def init_db():
        """Create or upgrade the database schema with Alembic."""
        from review_portal.migrations_runner import upgrade

        upgrade(current_app.config["DATABASE_URL"])
        click.echo("Database is at the latest schema.")

    @app.cli.command("seed-demo")
    def seed_demo():
        """Load synthetic demo institutions, users and cases (never in production)."""
        from review_portal.demo import DemoRefused, seed

        try:
            created = seed(current_app, session())
        except DemoRefused as exc:
            raise click.ClickException(str(exc))
        session.commit()
        click.echo("Demo data loaded." if created else "Demo data already present; nothing changed.")

    @app.cli.command("sla-check")
    def sla_check_command():
        """Flag reviews near their deadline and escalate overdue ones (run from cron, e.g. hourly)."""
        from review_portal.assignment.deadlines import policy_from_config
        from review_portal.assignment.services import sla_check
        from review_portal.clock import utcnow

        report = sla_check(session(), policy=policy_from_config(current_app.config), now=utcnow())
        session.commit()
        click.echo(f"SLA check: {report.summary()}.")
