"""Per-request cost of the busiest reads, in one process, without the noise of a shared machine's load test.

    python benchmarks/request_cost.py [--requests 200] [--db postgresql|sqlite]

Seeds the test users and a case in review with an 8-slice series (the test suite's helpers), logs the reviewer
in, and sends each route `--requests` times through Flask's test client (no network, no gunicorn). Prints, per
route: SQL statements per request, wall and CPU milliseconds per request (CPU of this process only: Python,
SQLAlchemy, the driver; PostgreSQL's own CPU is not in it). Run it under `py-spy record -f raw -o out.txt --`
to see where a request's time goes.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()

    from sqlalchemy import event

    from config import TestConfig
    from review_portal import create_app
    from review_portal.db import create_all, session
    from review_portal.imaging.services import series_of_case
    from tests.conftest import case_maker, login_client, make_users
    from tests.imaging_helpers import synth_series

    work = Path(tempfile.mkdtemp(prefix="portal-cost-"))
    pg = None
    try:
        if args.db == "postgresql":
            from tests.servers import start_postgres

            pg = start_postgres()
            url = pg.create_database("portal_cost")
        else:
            url = f"sqlite:///{work / 'cost.db'}"
        # Production's audit settings: requests never seal; no sealer thread here, so only requests are measured.
        app = create_app(TestConfig, DATABASE_URL=url, STORAGE_DIR=str(work / "store"), AUDIT_SEAL_AFTER_COMMIT="off",
                         AUDIT_SEAL_INTERVAL_SECONDS=0)
        create_all(app.extensions["db_engine"])
        db = session()
        users = make_users(db)
        case = case_maker(db, app.extensions["storage"], users, work)("in_review")
        referring = app.test_client()
        login_client(app, referring, users["referring"].email)
        files = [(open(p, "rb"), p.name) for p in synth_series(work / "s", 8)]
        r = referring.post(f"/cases/{case.id}/scans", data={"scans": files}, headers={"X-Requested-With": "fetch"})
        assert r.status_code == 200, r.status_code
        [series] = series_of_case(db, case.id)
        case_id, series_id = case.id, series.id
        db.close()
        session.remove()
        reviewer = app.test_client()
        login_client(app, reviewer, users["reviewer"].email)

        statements = []
        event.listen(app.extensions["db_engine"], "before_cursor_execute",
                     lambda *a: statements.append(1))
        routes = {"worklist": "/cases", "case page": f"/cases/{case_id}",
                  "viewer page": f"/cases/{case_id}/series/{series_id}",
                  "rendered slice": f"/cases/{case_id}/series/{series_id}/slices/3.png"}
        print(f"{args.requests} requests per route, {args.db}, one process, Flask test client")
        print(f"{'route':<16}{'statements':>11}{'wall ms':>9}{'p95 ms':>8}{'CPU ms':>8}")
        for label, path in routes.items():
            assert reviewer.get(path).status_code == 200, path  # warm
            statements.clear()
            walls = []
            cpu0 = time.process_time()
            for _ in range(args.requests):
                t0 = time.perf_counter()
                assert reviewer.get(path).status_code == 200
                walls.append((time.perf_counter() - t0) * 1000)
            cpu = (time.process_time() - cpu0) * 1000 / args.requests
            walls.sort()
            print(f"{label:<16}{len(statements) / args.requests:>11.1f}{statistics.mean(walls):>9.2f}"
                  f"{walls[int(len(walls) * 0.95) - 1]:>8.2f}{cpu:>8.2f}")
        session.remove()
        app.extensions["db_engine"].dispose()
        return 0
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
