"""Load benchmark: the portal under gunicorn on PostgreSQL, 50 reviewers and 20 referring physicians.

    python benchmarks/load.py [--seconds 60] [--workers 4] [--threads 4] [--think 0.5]

It starts a throw-away PostgreSQL cluster (tests/servers.py), seeds 50 reviewers, 20 referring
physicians and one routed case per reviewer (each with a 10-frame MR series; every referring
physician also has a signed case with its letter), starts `gunicorn -c gunicorn.conf.py wsgi:app`
with the production config, and runs 70 simulated users in a closed loop with think time:

* reviewer: worklist → open case → open viewer → scroll the series (10 slices) → open the
  opinion form → save a draft (with CSRF and the optimistic-lock version, like the browser)
* referring physician: worklist → open case → download the letter

Why not locust: it pulls gevent and its own web UI into the shared environment; the closed-loop
model we need (log in, keep a cookie, parse a CSRF token, think, repeat) is ~100 lines on the
standard library's keep-alive http.client, with one thread per simulated user. The client shares
the 2 cores with the server, so the figures are a lower bound of what the server can do.
Prints requests/s and p50/p95/p99 per route, and the error count.
"""
from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "load-test-password-1"
# Reviewers must pass TOTP (issue 6): every simulated reviewer is enrolled with this synthetic key.
TOTP_SECRET = "LOADTESTLOADTESTLOADTESTLOADTEST"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
VERSION = re.compile(r'name="version"[^>]*value="(\d*)"')


def seed(url: str, store: Path, reviewers: int, referrers: int) -> dict:
    from config import DevelopmentConfig
    from pydicom.data import get_testdata_file

    from review_portal import create_app
    from review_portal.auth.models import Institution, Role
    from review_portal.auth.services import create_user
    from review_portal.cases.services import HistoryItem, Referral
    from review_portal.uploads import UploadedFile
    from review_portal.workflow.referrals import submit_referral
    from review_portal.clock import utcnow
    from review_portal.db import create_all, session
    from review_portal.imaging.services import series_of_case
    from review_portal.letters.services import letters_for_case
    from review_portal.migrations_runner import upgrade
    from review_portal.workflow.assignments import accept_offer
    from review_portal.opinions.services import OpinionDraft, save_draft
    from review_portal.workflow.signing import sign_and_issue_letter

    upgrade(url)
    app = create_app(DevelopmentConfig, DATABASE_URL=url, STORAGE_DIR=str(store))
    create_all(app.extensions["db_engine"])  # tables newer than the last migration on a feature branch
    scan = get_testdata_file("emri_small.dcm", download=False) or get_testdata_file("MR_small.dcm", download=False)
    now = utcnow() - timedelta(days=1)
    plan = {"reviewers": [], "referrers": []}
    with app.app_context():
        db = session()
        storage = app.extensions["storage"]
        centre, hospital = Institution(name="Load Centre"), Institution(name="Load Hospital", address="1 Road")
        db.add_all([centre, hospital])
        db.flush()
        revs = [create_user(db, email=f"reviewer{i}@load.example", name=f"Reviewer {i}", password=PASSWORD,
                            role=Role.REVIEWER, now=now, institution=centre, specialty="medical_oncology",
                            sites=["breast", "thoracic", "gi"], credentials="MD") for i in range(reviewers)]
        for r in revs:
            r.totp_secret, r.totp_enabled_at = TOTP_SECRET, now
        refs = [create_user(db, email=f"referrer{i}@load.example", name=f"Referrer {i}", password=PASSWORD,
                            role=Role.REFERRING, now=now, institution=hospital) for i in range(referrers)]
        db.commit()
        tmp = Path(tempfile.mkdtemp())
        cases_by_reviewer, signed_by_referrer = defaultdict(list), {}
        for i in range(reviewers + referrers):
            by = refs[i % referrers]
            dest = tmp / f"scan{i}.dcm"
            shutil.copy(scan, dest)
            referral = Referral(
                patient_name=f"Load Patient {i}", patient_dob=date(1960, 1, 1 + i % 28), patient_sex="female",
                patient_mrn=f"LOAD-{i}", question="Do you agree?", diagnosis_in_question="Carcinoma.",
                plan_in_question="Surgery.", review_type="oncology_opinion", cancer_site="breast", priority="routine",
                history=[HistoryItem(date(2026, 1, 1), "pathology", "Biopsy.")])
            case, _ = submit_referral(db, storage, referral, documents=[], scans=[UploadedFile("mr.dcm", dest)], by=by,
                                      ip="127.0.0.1", now=now, turnaround_days={"routine": 5, "urgent": 2})
            accept_offer(db, case.active_assignment, by=case.reviewer, ip="127.0.0.1", now=now)
            db.commit()
            if i >= reviewers:  # one signed case with a letter per referring physician
                save_draft(db, case, OpinionDraft("confirmed", "agree", "Same.", "Same plan.", "Sound."),
                           based_on_version=0, by=case.reviewer, ip="127.0.0.1", now=now)
                sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True,
                                      institution=app.config["INSTITUTION"], by=case.reviewer, ip="127.0.0.1", now=now)
                db.commit()
                signed_by_referrer[by.email] = (case.id, letters_for_case(db, case.id)[0].id)
            else:
                series = series_of_case(db, case.id)[0]
                cases_by_reviewer[case.reviewer.email].append((case.id, series.id, len(series.instances[0:]) and
                                                               sum(max(x.frames, 1) for x in series.instances)))
        for r in revs:
            if cases_by_reviewer[r.email]:
                plan["reviewers"].append((r.email, cases_by_reviewer[r.email]))
        for r in refs:
            plan["referrers"].append((r.email, signed_by_referrer.get(r.email)))
        shutil.rmtree(tmp, ignore_errors=True)
    app.extensions["db_engine"].dispose()
    return plan


class User:
    def __init__(self, port: int, stats, errors, lock):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}
        self.stats, self.errors, self.lock = stats, errors, lock

    def request(self, label: str, method: str, path: str, body: str | None = None, expect=(200,), record=True):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # The server closed an idle keep-alive connection just as we reused it: like a browser,
                # reconnect and send once more (only then is it an error).
                self.conn.close()
                if attempt == 2:
                    with self.lock:
                        self.errors[label].append(f"{type(exc).__name__}: {exc}")
                    return None, b""
                started = time.perf_counter()
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()
                with self.lock:
                    self.errors[label].append(f"{type(exc).__name__}: {exc}")
                return None, b""
        elapsed = time.perf_counter() - started
        self.location = response.getheader("Location", "")
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        with self.lock:
            if record:
                self.stats[label].append(elapsed)
            if response.status not in expect:
                self.errors[label].append(f"HTTP {response.status} {path}")
        return response.status, data

    def login(self, email: str) -> bool:
        _, page = self.request("GET /login", "GET", "/login")
        token = CSRF.search(page.decode())
        from urllib.parse import urlencode

        status, _ = self.request("POST /login", "POST", "/login", urlencode(
            {"csrf_token": token.group(1) if token else "", "email": email, "password": PASSWORD}), expect=(302,))
        if status != 302 or not self.location.endswith("/login/mfa"):
            return status == 302
        import pyotp

        _, page = self.request("GET /login/mfa", "GET", "/login/mfa")
        token = CSRF.search(page.decode())
        status, _ = self.request("POST /login/mfa", "POST", "/login/mfa", urlencode(
            {"csrf_token": token.group(1) if token else "", "code": pyotp.TOTP(TOTP_SECRET).now()}), expect=(302,))
        return status == 302


def reviewer_loop(user: User, cases, stop: threading.Event, think: float):
    from urllib.parse import urlencode

    n = 0
    while not stop.is_set():
        case_id, series_id, slices = cases[n % len(cases)]
        n += 1
        user.request("worklist", "GET", "/cases")
        user.request("case page", "GET", f"/cases/{case_id}")
        user.request("viewer page", "GET", f"/cases/{case_id}/series/{series_id}")
        for index in range(slices):  # scrolling: the viewer asks for slices one after another
            user.request("rendered slice", "GET", f"/cases/{case_id}/series/{series_id}/slices/{index}.png")
        _, form = user.request("opinion form", "GET", f"/cases/{case_id}/opinion")
        html = form.decode(errors="replace")
        token, version = CSRF.search(html), VERSION.search(html)
        user.request("save draft", "POST", f"/cases/{case_id}/opinion", urlencode({
            "csrf_token": token.group(1) if token else "", "version": version.group(1) if version else "",
            "diagnosis_concordance": "refined", "plan_concordance": "modify",
            "reviewer_diagnosis": f"Refined diagnosis, pass {n}.", "recommended_plan": "Modified plan.",
            "rationale": "Because.", "further_tests": ""}), expect=(302,))
        stop.wait(random.uniform(0, 2 * think))


def referrer_loop(user: User, signed, stop: threading.Event, think: float):
    while not stop.is_set():
        user.request("worklist", "GET", "/cases")
        if signed:
            case_id, letter_id = signed
            user.request("case page", "GET", f"/cases/{case_id}")
            user.request("download letter", "GET", f"/cases/{case_id}/letters/{letter_id}.pdf")
        stop.wait(random.uniform(0, 2 * think))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--referrers", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--think", type=float, default=1.0, help="mean think time between actions, seconds")
    args = parser.parse_args()

    from tests.servers import free_port, start_postgres

    pg = start_postgres()
    work = Path(tempfile.mkdtemp(prefix="portal-load-"))
    gunicorn = None
    try:
        url = pg.create_database("portal_load")
        t0 = time.perf_counter()
        plan = seed(url, work / "store", args.reviewers, args.referrers)
        print(f"Seeded {args.reviewers} reviewers, {args.referrers} referring physicians, "
              f"{args.reviewers + args.referrers} cases in {time.perf_counter() - t0:.0f} s")
        port = free_port()
        env = dict(os.environ, PORTAL_CONFIG="production", SECRET_KEY=secrets.token_hex(32), DATABASE_URL=url,
                   STORAGE_DIR=str(work / "store"), GUNICORN_BIND=f"127.0.0.1:{port}",
                   GUNICORN_WORKERS=str(args.workers), GUNICORN_THREADS=str(args.threads), LOG_LEVEL="WARNING")
        gunicorn = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                                    cwd=ROOT, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or gunicorn.poll() is not None:
                raise RuntimeError("gunicorn did not become ready")
            time.sleep(0.2)

        stats, errors, lock = defaultdict(list), defaultdict(list), threading.Lock()
        users = []
        for email, cases in plan["reviewers"]:
            users.append((User(port, stats, errors, lock), email, reviewer_loop, cases))
        for email, signed in plan["referrers"]:
            users.append((User(port, stats, errors, lock), email, referrer_loop, signed))
        for user, email, _, _ in users:
            if not user.login(email):
                print(f"login failed for {email}")
        login_stats = {k: stats.pop(k) for k in list(stats)}
        stop = threading.Event()
        threads = [threading.Thread(target=loop, args=(user, data, stop, args.think), daemon=True)
                   for user, _, loop, data in users]
        started = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        elapsed = time.perf_counter() - started

        print(f"\n{len(plan['reviewers'])} reviewers + {len(plan['referrers'])} referring physicians, "
              f"{elapsed:.0f} s, gunicorn {args.workers} workers x {args.threads} threads, "
              f"mean think time {args.think} s, {os.cpu_count()} CPU(s) shared by client, server and PostgreSQL")
        print(f"{'route':<18}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
        total = 0
        for label in ["worklist", "case page", "viewer page", "rendered slice", "opinion form", "save draft",
                      "download letter"]:
            values = stats.get(label, [])
            total += len(values)
            if values:
                print(f"{label:<18}{len(values):>9}{len(values) / elapsed:>8.1f}{pct(values, 50):>9.1f}"
                      f"{pct(values, 95):>9.1f}{pct(values, 99):>9.1f}{len(errors.get(label, [])):>8}")
        for label, values in login_stats.items():
            print(f"{label + ' (setup)':<18}{len(values):>9}{'':>8}{pct(values, 50):>9.1f}{pct(values, 95):>9.1f}"
                  f"{pct(values, 99):>9.1f}{len(errors.get(label, [])):>8}")
        error_count = sum(len(v) for v in errors.values())
        print(f"{'all':<18}{total:>9}{total / elapsed:>8.1f}{'':>27}{error_count:>8}")
        for label, items in errors.items():
            for item in items[:3]:
                print(f"  error in {label}: {item}")
        return 1 if error_count else 0
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
