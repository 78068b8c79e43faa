"""Command-line tasks: `flask init-db`, `flask seed-demo`, `flask backup-verify`, `flask jobs-requeue`."""
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

    @app.cli.command("backup-verify")
    def backup_verify():
        """Check every stored object against its sha256 and every database reference against storage."""
        from review_portal.backup import verify_backup

        report = verify_backup(session(), current_app.extensions["storage"])
        click.echo(f"{report.objects_checked} stored object(s) checked, {report.references_checked} database "
                   f"reference(s) checked, {report.unreferenced} object(s) referenced by nothing.")
        for key in report.corrupt:
            click.echo(f"CORRUPT: {key} does not match its sha256", err=True)
        for ref in report.missing:
            click.echo(f"MISSING: {ref}", err=True)
        if not report.ok:
            raise click.ClickException(f"{len(report.corrupt)} corrupt object(s), {len(report.missing)} missing object(s).")
        click.echo("Backup is consistent.")

    @app.cli.command("jobs-requeue")
    def jobs_requeue():
        """Hand jobs whose worker died (or that waited too long) back to the queue. Run every few minutes."""
        from review_portal.clock import utcnow
        from review_portal.jobs import requeue_abandoned

        ids = requeue_abandoned(session(), now=utcnow())
        click.echo(f"{len(ids)} job(s) requeued." + (f" Ids: {', '.join(map(str, ids))}" if ids else ""))
