"""Command-line tasks: init-db, seed-demo, sla-check, outcomes-due, audit-verify, audit-restore-epoch,
purge-retention, backup-verify, storage-scrub, storage-sweep, jobs-requeue."""
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
        """Flag reviews near or past their deadline and chase unanswered offers (run from cron, e.g. hourly)."""
        from review_portal.assignment.sla import sla_check
        from review_portal.clock import utcnow
        from review_portal.deadlines import policy_from_config

        report = sla_check(session(), policy=policy_from_config(current_app.config), now=utcnow())
        session.commit()
        click.echo(f"SLA check: {report.summary()}.")

    @app.cli.command("outcomes-due")
    def outcomes_due_command():
        """Ask referrers what happened, OUTCOME_FOLLOW_UP_DAYS after each first letter (cron, e.g. daily; runs once per case)."""
        from review_portal.clock import utcnow
        from review_portal.outcomes.services import request_due_outcomes

        days = int(current_app.config["OUTCOME_FOLLOW_UP_DAYS"])
        created = request_due_outcomes(session(), days=days, now=utcnow())
        session.commit()
        click.echo(f"Outcome follow-ups: {len(created)} asked ({days} days after the letter).")

    @app.cli.command("audit-verify")
    @click.option("--expect-head", "expect_head", default=None, metavar="HASH",
                  help="A head hash kept elsewhere (e.g. from an earlier run); the chain must contain it.")
    def audit_verify(expect_head: str | None):
        """Check the audit trail's hash chain against the latest anchor; name the first broken link. Exit 1 if broken."""
        from review_portal.audit.chain import load_anchors, seal, verify

        store = current_app.extensions["storage"]
        seal(current_app.extensions["db_engine"], anchor_store=store)
        verdict = verify(session(), anchors=load_anchors(store), expect_head=(expect_head or "").strip().lower() or None)
        if not verdict.ok:
            click.echo(f"AUDIT TRAIL BROKEN after {verdict.checked} good events: {verdict.problem}", err=True)
            raise SystemExit(1)
        click.echo(f"Audit trail intact: {verdict.checked} events chained; head hash {verdict.head_hash}.")
        if verdict.anchor is not None:
            click.echo(f"Checked against anchor {verdict.anchor.name} (epoch {verdict.anchor.epoch}, "
                       f"event #{verdict.anchor.seq}, written {verdict.anchor.at}).")
        else:
            click.echo("No anchor yet: the newest events can only be checked with --expect-head.")
        for note in verdict.notes:
            click.echo(note)
        if verdict.unsealed:
            click.echo(f"{verdict.unsealed} events are not sealed yet.")

    @app.cli.command("audit-restore-epoch")
    @click.option("--reason", required=True, help="Which backup was restored and why (kept in the audit trail).")
    def audit_restore_epoch(reason: str):
        """After restoring the database from a backup: record the restore and start a new anchor epoch."""
        from review_portal.audit.chain import EPOCH_ACTION, load_anchors, seal, verify
        from review_portal.audit.services import record
        from review_portal.clock import utcnow

        store, engine = current_app.extensions["storage"], current_app.extensions["db_engine"]
        seal(engine)
        inner = verify(session())  # the restored chain must hold together on its own
        if not inner.ok:
            raise click.ClickException(f"The restored audit trail is itself broken: {inner.problem}")
        anchors = load_anchors(store)
        latest = max(anchors, key=lambda a: (a.epoch, a.seq), default=None)
        epoch = (latest.epoch if latest else 1) + 1
        before = (f"epoch {latest.epoch} had reached event #{latest.seq} (anchor {latest.name})" if latest
                  else "no earlier anchor")
        record(session(), action=EPOCH_ACTION, by=None, ip="cli", now=utcnow(), object_type="audit",
               object_id=str(epoch), reason=reason,
               detail=f"epoch={epoch}; restore from backup; restored chain ends at #{inner.checked}; {before}")
        session.commit()
        seal(engine, anchor_store=store)  # seals the event and anchors the new epoch (not left to the sealer)
        click.echo(f"Restore recorded: audit epoch {epoch} starts after event #{inner.checked} ({before}).")

    @app.cli.command("purge-retention")
    @click.option("--dry-run", is_flag=True, help="List the cases that would be purged, change nothing.")
    def purge_retention(dry_run: bool):
        """Remove closed cases older than RETENTION_DAYS (files and rows; the audit trail stays)."""
        from review_portal.clock import utcnow
        from review_portal.models import BLOB_REFERENCES, blob_is_referenced
        from review_portal.privacy.retention import delete_files, due_for_purge, purge

        days = current_app.config["RETENTION_DAYS"]
        now = utcnow()
        if dry_run:
            for case in due_for_purge(session(), now=now, retention_days=days):
                click.echo(f"would purge {case.reference} (closed {case.closed_at:%Y-%m-%d})")
            return
        report = purge(session(), now=now, retention_days=days, references=BLOB_REFERENCES)
        session.commit()
        delete_files(session(), current_app.extensions["storage"], report, referenced=blob_is_referenced)
        click.echo(f"Purged {len(report.cases)} case(s) closed more than {days} days ago: "
                   f"{report.blobs_deleted} files removed, {report.blobs_kept_shared} kept (shared with other cases).")
        if report.leftovers:
            click.echo("Files still present: " + ", ".join(report.leftovers), err=True)
            raise SystemExit(1)

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

    @app.cli.command("storage-scrub")
    def storage_scrub():
        """Re-hash every stored file and check every database reference (schedule it, e.g. nightly).
        Prints each corrupt or missing file; exit status 1 on any problem."""
        import logging

        from review_portal.backup import verify_backup

        report = verify_backup(session(), current_app.extensions["storage"])
        for key in report.corrupt:
            click.echo(f"CORRUPT: {key} does not match its sha256", err=True)
        for ref in report.missing:
            click.echo(f"MISSING: {ref}", err=True)
        click.echo(f"Storage scrub: {report.objects_checked} stored file(s) re-hashed, {len(report.corrupt)} corrupt; "
                   f"{report.references_checked} reference(s) checked, {len(report.missing)} missing.")
        if not report.ok:
            logging.getLogger("review_portal.storage").error(
                "INTEGRITY ALERT: storage scrub found %d corrupt and %d missing file(s)", len(report.corrupt),
                len(report.missing))
            raise SystemExit(1)
        click.echo("Every stored file matches its sha256.")

    @app.cli.command("storage-sweep")
    @click.option("--max-age-minutes", type=float, default=None,
                  help="Override SPOOL_MAX_AGE_MINUTES (never less than the longest upload may take).")
    def storage_sweep(max_age_minutes: float | None):
        """Remove spooled uploads and scratch folders crashed requests or workers left behind (cron, e.g. hourly)."""
        minutes = float(max_age_minutes if max_age_minutes is not None else current_app.config["SPOOL_MAX_AGE_MINUTES"])
        removed = current_app.extensions["storage"].sweep_tmp(max_age_seconds=minutes * 60)
        click.echo(f"Storage sweep: {removed} leftover temporary file(s) or folder(s) older than {minutes:g} minutes removed.")

    @app.cli.command("jobs-requeue")
    def jobs_requeue():
        """Hand jobs whose worker died (or that waited too long) back to the queue. Run every few minutes."""
        from review_portal.clock import utcnow
        from review_portal.jobs import requeue_abandoned

        ids = requeue_abandoned(session(), now=utcnow())
        click.echo(f"{len(ids)} job(s) requeued." + (f" Ids: {', '.join(map(str, ids))}" if ids else ""))
