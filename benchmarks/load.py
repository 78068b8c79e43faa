"""Load benchmark: the portal under gunicorn on PostgreSQL, reviewers and referring physicians at once.

    python benchmarks/load.py [--seconds 60] [--reviewers 50] [--referrers 20] [--workers 4] [--threads 4]
                              [--slices 100] [--syntax uncompressed|jpeg-lossless|j2k] [--hosts 1|2]
                              [--pixels auto|yes|no] [--cpu-seconds 8] [--ramp] [--configs 2x4,3x4,...]
                              [--profile SECONDS]

It starts a throw-away PostgreSQL cluster (tests/servers.py; plus Redis when --hosts > 1 or --redis),
synthesizes a 512 x 512 CT series of --slices slices from pydicom-data's 693_UNCR.dcm (as
benchmarks/imaging.py does), seeds one routed case with that series per reviewer and one signed case with
its letter per referring physician, starts `gunicorn -c gunicorn.conf.py wsgi:app` with the production
config (--hosts 2: two gunicorn instances on two ports, one database, one Redis, one storage directory), and
runs the users in a closed loop with think time:

* reviewer: worklist -> case -> viewer page -> series JSON -> every frame of the series in order
  (JPEG slices like static/js/viewer.js, or raw pixels from the JSON's "frames"[].pixels_url when the viewer
  fetches those: --pixels auto) -> opinion form -> save a draft (CSRF + optimistic-lock version)
* referring physician: worklist -> case -> download the letter

Patient images are no-store, so every viewer opening fetches its frames again (no HTTP cache in the client).
With --hosts 2 each user logs in on one host and alternates hosts from one round to the next.

The client runs in CLIENT_PROCESSES separate processes (benchmarks/loadclient.py), each with one thread per
user, so the client's GIL does not limit the server; client, server and PostgreSQL still share the cores.

Prints req/s, p50/p95/p99 and errors per route, the p95 of /healthz probed during the same run (the
noise floor), and CPU milliseconds per request per route. CPU is the gunicorn process tree's CPU time
(master, workers, their decode sandboxes; reaped children included) from psutil, measured in route-isolated
phases after the mixed run: --cpu-seconds of one route at a time, 8 users without think time, CPU delta
divided by that route's requests ("save draft" minus the opinion form it loads first). The mixed run's
own CPU per request (all routes together) and PostgreSQL's CPU per request are printed beside it.

--ramp raises users (5:2 reviewers:referrers) step by step until the p95 of all requests passes 150 ms and
prints the capacity (req/s of the last step within 150 ms). --configs runs the mixed load once per
workers x threads setting on the same seeded data and prints one table. --profile SECONDS records the
workers with py-spy during the mixed run and prints where the samples go (benchmarks/profile_report.py).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from loadclient import PASSWORD, TOTP_SECRET, client_main
from loadserver import Servers, cpu_seconds, pct

CLIENT_PROCESSES = 3
ROUTES = ["worklist", "case page", "viewer page", "series json", "rendered slice", "pixels", "opinion form",
          "save draft", "download letter"]
P95_LIMIT_MS = 150


def seed(url: str, store: Path, reviewers: int, referrers: int, slices: int, syntax: str) -> list[dict]:
    from imaging import synthesize

    from config import DevelopmentConfig
    from review_portal import create_app
    from review_portal.auth.models import Institution, Role
    from review_portal.auth.services import create_user
    from review_portal.cases.services import HistoryItem, Referral
    from review_portal.clock import utcnow
    from review_portal.db import create_all, session
    from review_portal.imaging.services import series_of_case
    from review_portal.letters.services import letters_for_case
    from review_portal.migrations_runner import upgrade
    from review_portal.opinions.services import OpinionDraft, save_draft
    from review_portal.uploads import UploadedFile
    from review_portal.workflow.assignments import accept_offer
    from review_portal.workflow.referrals import submit_referral
    from review_portal.workflow.signing import sign_and_issue_letter

    upgrade(url)
    # Seeding decodes in-process (no sandbox): same checks, less time before the run.
    app = create_app(DevelopmentConfig, DATABASE_URL=url, STORAGE_DIR=str(store), SANDBOX_ENABLED=False)
    create_all(app.extensions["db_engine"])  # tables newer than the last migration on a feature branch
    tmp = Path(tempfile.mkdtemp(prefix="portal-load-ct-"))
    started = time.perf_counter()
    ct = synthesize(tmp / "ct", slices, syntax)
    print(f"  synthesized the CT in {time.perf_counter() - started:.0f} s", flush=True)
    now = utcnow() - timedelta(days=1)
    specs: list[dict] = []
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
        cases_by_reviewer, letter_by_referrer = defaultdict(list), {}
        for i in range(reviewers + referrers):
            by = refs[i % referrers]
            scans = []
            if i < reviewers:  # the reviewer's case carries the CT; the letters' cases need no images
                upload = tmp / f"case{i}"
                upload.mkdir()
                for p in ct:
                    dest = upload / p.name
                    try:
                        os.link(p, dest)
                    except OSError:
                        shutil.copy(p, dest)
                    scans.append(UploadedFile(p.name, dest))
            referral = Referral(
                patient_name=f"Load Patient {i}", patient_dob=date(1960, 1, 1 + i % 28), patient_sex="female",
                patient_mrn=f"LOAD-{i}", question="Do you agree?", diagnosis_in_question="Carcinoma.",
                plan_in_question="Surgery.", review_type="oncology_opinion", disciplines=("medical_oncology",),
                cancer_site="breast", priority="routine",
                history=[HistoryItem(date(2026, 1, 1), "pathology", "Biopsy.")])
            case, _ = submit_referral(db, storage, referral, documents=[], scans=scans, by=by,
                                      ip="127.0.0.1", now=now, turnaround_days={"routine": 5, "urgent": 2})
            accept_offer(db, case.active_assignment, by=case.reviewer, ip="127.0.0.1", now=now)
            db.commit()
            if i >= reviewers:
                save_draft(db, case, OpinionDraft("confirmed", "agree", "Same.", "Same plan.", "Sound."),
                           based_on_version=0, by=case.reviewer, ip="127.0.0.1", now=now)
                sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True,
                                      institution=app.config["INSTITUTION"], by=case.reviewer, ip="127.0.0.1", now=now)
                db.commit()
                letter_by_referrer[by.email] = (case.id, letters_for_case(db, case.id)[0].id)
            else:
                series = series_of_case(db, case.id)[0]
                cases_by_reviewer[case.reviewer.email].append((case.id, series.id))
            if (i + 1) % 10 == 0 or i == 0:
                print(f"  seeded {i + 1} of {reviewers + referrers} cases at {time.perf_counter() - started:.0f} s",
                      flush=True)
        # Interleave 5 reviewers : 2 referrers, so that any prefix of the list (a ramp step) keeps the mix.
        rev_specs = [{"kind": "reviewer", "email": r.email, "cases": cases_by_reviewer[r.email]} for r in revs
                     if cases_by_reviewer[r.email]]
        ref_specs = [{"kind": "referrer", "email": r.email, "letter": letter_by_referrer.get(r.email)} for r in refs]
        while rev_specs or ref_specs:
            specs.extend(rev_specs[:5])
            specs.extend(ref_specs[:2])
            rev_specs, ref_specs = rev_specs[5:], ref_specs[2:]
        for n, s in enumerate(specs):
            s["index"] = n
    shutil.rmtree(tmp, ignore_errors=True)
    app.extensions["db_engine"].dispose()
    return specs


def seed_key(reviewers: int, referrers: int, slices: int, syntax: str) -> str:
    """Seeded data is reusable only by the same code: the key covers every source file's name, size and mtime."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((ROOT / "review_portal").rglob("*.py")) + [Path(__file__)]:
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"r{reviewers}-f{referrers}-s{slices}-{syntax}-{h.hexdigest()[:12]}"


class Clients:
    """CLIENT_PROCESSES processes, users dealt round-robin; every command goes to all and waits for all."""

    def __init__(self, specs, ports, think, pixels, processes=CLIENT_PROCESSES):
        ctx = multiprocessing.get_context("spawn")
        self.pipes, self.procs, self.owner = [], [], {}
        for p in range(processes):
            mine = [s for s in specs if s["index"] % processes == p]
            for s in mine:
                self.owner[s["index"]] = p
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(child, mine, ports, think, pixels, p == 0), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def _each(self, make):
        for p, pipe in enumerate(self.pipes):
            pipe.send(make(p))
        return [pipe.recv() for pipe in self.pipes]

    def login(self, indices) -> list[str]:
        return [e for failed in self._each(lambda p: ("login", [i for i in indices if self.owner[i] == p]))
                for e in failed]

    def reset(self) -> None:
        self._each(lambda p: ("reset", None))

    def start(self, indices, seconds, mode) -> None:
        for p, pipe in enumerate(self.pipes):
            pipe.send(("run", ([i for i in indices if self.owner[i] == p], seconds, mode)))

    def collect(self) -> dict:
        merged = {"stats": defaultdict(list), "errors": defaultdict(list), "error_counts": defaultdict(int)}
        for pipe in self.pipes:
            r = pipe.recv()
            for key in ("stats", "errors"):
                for label, values in r[key].items():
                    merged[key][label].extend(values)
            for label, n in r["error_counts"].items():
                merged["error_counts"][label] += n
        return merged

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


def run_phase(clients: Clients, servers: Servers, indices, seconds: float, mode: str, profile: float = 0) -> dict:
    """Run users for `seconds`, then let the requests in flight finish: every request that started is counted,
    and the CPU interval runs from the start to the last answer, so CPU per request has no boundary error."""
    cpu0, pg0, t0 = cpu_seconds(servers.server_pids()), cpu_seconds(servers.pg_pids()), time.perf_counter()
    clients.start(indices, seconds, mode)
    spy = servers.start_profile(profile) if profile else None
    time.sleep(seconds)
    result = clients.collect()
    cpu1, pg1, elapsed = cpu_seconds(servers.server_pids()), cpu_seconds(servers.pg_pids()), time.perf_counter() - t0
    result.update(server_cpu=cpu1 - cpu0, pg_cpu=pg1 - pg0, seconds=elapsed, profile=spy)
    return result


def idle_cpu(servers: Servers, seconds: float = 5) -> float:
    """CPU seconds per second the server tree spends with no request (sandboxes, timers): subtracted per phase."""
    cpu0, t0 = cpu_seconds(servers.server_pids()), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(servers.server_pids()) - cpu0) / (time.perf_counter() - t0)


def print_run(result: dict, title: str, cpu_per_route: dict | None = None) -> None:
    stats, counts, elapsed = result["stats"], result["error_counts"], result["seconds"]
    print(f"\n### {title}\n")
    print("| route | requests | req/s | p50 ms | p95 ms | p99 ms | errors | CPU ms/request |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total = 0
    for label in ROUTES:
        values = stats.get(label, [])
        total += len(values)
        cpu = f"{cpu_per_route[label]:.1f}" if cpu_per_route and label in cpu_per_route else ""
        if values or counts.get(label):
            print(f"| {label} | {len(values)} | {len(values) / elapsed:.1f} | {pct(values, 50):.0f} | "
                  f"{pct(values, 95):.0f} | {pct(values, 99):.0f} | {counts.get(label, 0)} | {cpu} |")
    every = [v for label in ROUTES for v in stats.get(label, [])]
    errors = sum(counts.values())
    per_req = result["server_cpu"] * 1000 / total if total else 0
    print(f"| **all routes** | {total} | **{total / elapsed:.1f}** | {pct(every, 50):.0f} | **{pct(every, 95):.0f}** | "
          f"{pct(every, 99):.0f} | **{errors}** | {per_req:.1f} (mixed) |")
    health = stats.get("healthz", [])
    if health:
        print(f"| /healthz (noise floor, probed) | {len(health)} | | {pct(health, 50):.0f} | {pct(health, 95):.0f} | "
              f"{pct(health, 99):.0f} | {counts.get('healthz', 0)} | |")
    print(f"\nServer CPU {result['server_cpu']:.1f} s over {elapsed:.0f} s "
          f"({result['server_cpu'] / elapsed * 100:.0f}% of one core); PostgreSQL CPU {result['pg_cpu']:.1f} s "
          f"({result['pg_cpu'] * 1000 / max(total, 1):.1f} ms per request).")
    for label, items in result["errors"].items():
        for item in items[:3]:
            print(f"  error in {label}: {item}")


def cpu_phases(clients, servers, specs, seconds, pixels_label) -> dict:
    """CPU ms per request, one route at a time (8 users, no think time)."""
    idle = idle_cpu(servers)
    reviewers = [s["index"] for s in specs if s["kind"] == "reviewer"][:8]
    referrers = [s["index"] for s in specs if s["kind"] == "referrer" and s.get("letter")][:8]
    out, rows = {}, []
    for route in ["healthz", "worklist", "case page", "viewer page", "series json", pixels_label, "opinion form",
                  "save draft", "download letter"]:
        users = referrers if route == "download letter" else reviewers
        r = run_phase(clients, servers, users, seconds, f"only:{route}")
        n = len(r["stats"].get(route, []))
        if not n:
            continue
        cpu = r["server_cpu"] - idle * r["seconds"]
        if route == "save draft":  # each save loads the form first, as the browser does
            cpu -= len(r["stats"].get("opinion form", [])) * out.get("opinion form", 0) / 1000
        out[route] = cpu * 1000 / n
        rows.append((route, n, n / r["seconds"], pct(r["stats"][route], 95), out[route], r["pg_cpu"] * 1000 / n,
                     r["error_counts"].get(route, 0)))
    print(f"\n### CPU per request, route-isolated phases ({seconds:.0f} s each, {len(reviewers)} users, no think time; "
          f"idle server CPU {idle * 1000:.0f} ms/s subtracted)\n")
    print("| route | requests | req/s | p95 ms | server CPU ms/request | PostgreSQL CPU ms/request | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for route, n, rate, p95, cpu, pg, err in rows:
        print(f"| {route} | {n} | {rate:.1f} | {p95:.0f} | {cpu:.1f} | {pg:.1f} | {err} |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--referrers", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None, help="default: gunicorn.conf.py's")
    parser.add_argument("--threads", type=int, default=None, help="default: gunicorn.conf.py's")
    parser.add_argument("--think", type=float, default=1.0, help="mean think time between rounds, seconds")
    parser.add_argument("--slices", type=int, default=100, help="slices of the 512x512 CT series (>= 100)")
    parser.add_argument("--syntax", default="uncompressed", choices=["uncompressed", "jpeg-lossless", "j2k"])
    parser.add_argument("--hosts", type=int, default=1, help="gunicorn instances on separate ports")
    parser.add_argument("--redis", action="store_true", help="start Redis also for one host")
    parser.add_argument("--pixels", default="auto", choices=["auto", "yes", "no"],
                        help="fetch raw pixels listed in the series JSON instead of rendered slices (auto: when listed)")
    parser.add_argument("--cpu-seconds", type=float, default=8, help="length of each route-isolated CPU phase (0: skip)")
    parser.add_argument("--ramp", action="store_true", help="raise users until p95 passes 150 ms")
    parser.add_argument("--ramp-steps", default="5,10,20,35,50,70",
                        help="user counts of the ramp (seeded to the largest)")
    parser.add_argument("--ramp-seconds", type=float, default=20)
    parser.add_argument("--configs", default="", help="workers x threads to compare, e.g. 2x4,3x4,4x4,2x8,4x8")
    parser.add_argument("--profile", type=float, default=0, help="py-spy the workers for this many seconds")
    parser.add_argument("--profile-out", default="", help="keep the py-spy raw output here")
    parser.add_argument("--warmup", type=float, default=15,
                        help="seconds of unrecorded mixed load first (workers start their decode sandboxes)")
    parser.add_argument("--seed-cache", default="",
                        help="directory keeping seeded data between runs (keyed by its sizes and the code)")
    parser.add_argument("--clients", type=int, default=CLIENT_PROCESSES, help="client processes")
    args = parser.parse_args()

    reviewers, referrers = args.reviewers, args.referrers
    if args.ramp:
        biggest = max(int(x) for x in args.ramp_steps.split(","))
        reviewers, referrers = max(reviewers, -(-biggest * 5 // 7)), max(referrers, -(-biggest * 2 // 7))
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",") if c]

    servers = Servers(hosts=args.hosts, redis=args.redis or args.hosts > 1)
    clients = None
    try:
        url = servers.start_database()
        t0 = time.perf_counter()
        cache = Path(args.seed_cache) / seed_key(reviewers, referrers, args.slices, args.syntax) if args.seed_cache else None
        specs = servers.load_seed(cache) if cache else None
        if specs:
            print(f"Seed restored from {cache} in {time.perf_counter() - t0:.0f} s", flush=True)
        else:
            print(f"Seeding {reviewers} reviewers, {referrers} referring physicians and a {args.slices}-slice "
                  f"512x512 CT ({args.syntax}) per reviewer ...", flush=True)
            specs = seed(url, servers.store, reviewers, referrers, args.slices, args.syntax)
            print(f"Seeded in {time.perf_counter() - t0:.0f} s", flush=True)
            if cache:
                servers.save_seed(cache, specs)
        first = configs[0] if configs else (args.workers, args.threads)
        servers.start_app(*first)
        clients = Clients(specs, servers.ports, args.think, args.pixels, args.clients)
        machine = (f"{os.cpu_count()} CPU(s) shared by client ({args.clients} processes), server and PostgreSQL; "
                   f"load average {os.getloadavg()[0]:.1f} at start")
        default_users = ([s["index"] for s in specs if s["kind"] == "reviewer"][:args.reviewers]
                         + [s["index"] for s in specs if s["kind"] == "referrer"][:args.referrers])
        failed = clients.login(sorted(s["index"] for s in specs) if args.ramp else default_users)
        if failed:
            print(f"login failed for {len(failed)} users, e.g. {failed[:3]}")
        status = 0
        if args.warmup:
            run_phase(clients, servers, default_users, args.warmup, "mix")
        if configs:
            rows = []
            for n, (w, t) in enumerate(configs):
                if n:
                    servers.restart_app(w, t)
                    clients.reset()
                    if args.warmup:
                        run_phase(clients, servers, default_users, args.warmup, "mix")
                r = run_phase(clients, servers, default_users, args.seconds, "mix")
                print_run(r, f"{w} workers x {t} threads, {len(default_users)} users, {args.seconds:.0f} s")
                every = [v for label in ROUTES for v in r["stats"].get(label, [])]
                rows.append((w, t, len(every) / r["seconds"], pct(every, 50), pct(every, 95), pct(every, 99),
                             sum(r["error_counts"].values()), r["server_cpu"] * 1000 / max(len(every), 1),
                             pct(r["stats"].get("healthz", []), 95)))
            print(f"\n### Serving configurations ({len(default_users)} users, {args.seconds:.0f} s each; {machine})\n")
            print("| workers x threads | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU ms/request | /healthz p95 ms |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for w, t, rate, p50, p95, p99, err, cpu, hz in rows:
                print(f"| {w}x{t} | {rate:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {err} | {cpu:.1f} | {hz:.0f} |")
        elif args.ramp:
            rows, capacity = [], None
            for users in (int(x) for x in args.ramp_steps.split(",")):
                r = run_phase(clients, servers, list(range(users)), args.ramp_seconds, "mix")
                every = [v for label in ROUTES for v in r["stats"].get(label, [])]
                rate, p95 = len(every) / r["seconds"], pct(every, 95)
                rows.append((users, rate, p95, sum(r["error_counts"].values()), pct(r["stats"].get("healthz", []), 95)))
                print(f"  {users} users: {rate:.1f} req/s, p95 {p95:.0f} ms", flush=True)
                if p95 > P95_LIMIT_MS:
                    break
                capacity = (users, rate)
            print(f"\n### Ramp ({args.ramp_seconds:.0f} s per step; {machine})\n")
            print("| users | req/s | p95 ms (all routes) | errors | /healthz p95 ms |")
            print("|---:|---:|---:|---:|---:|")
            for users, rate, p95, err, hz in rows:
                print(f"| {users} | {rate:.1f} | {p95:.0f} | {err} | {hz:.0f} |")
            if capacity:
                print(f"\nCapacity: {capacity[1]:.1f} req/s with {capacity[0]} users at p95 <= {P95_LIMIT_MS} ms")
            else:
                print(f"\nCapacity: below the first step ({rows[0][0]} users already past p95 {P95_LIMIT_MS} ms)")
        else:
            r = run_phase(clients, servers, default_users, args.seconds, "mix")
            w, t = servers.workers, servers.threads
            pixels_label = "pixels" if r["stats"].get("pixels") else "rendered slice"
            cpu = cpu_phases(clients, servers, specs, args.cpu_seconds, pixels_label) if args.cpu_seconds else None
            print_run(r, f"Mixed load: {len(default_users)} users ({args.reviewers} reviewers + {args.referrers} "
                         f"referring physicians), {args.seconds:.0f} s, {args.hosts} host(s) x gunicorn {w} workers x "
                         f"{t} threads, {args.slices}-slice CT ({args.syntax}), think {args.think} s; {machine}", cpu)
            status = 1 if sum(r["error_counts"].values()) else 0
            if args.profile:  # a separate run: py-spy's own CPU would distort the figures above
                from profile_report import report

                p = run_phase(clients, servers, default_users, args.profile, "mix", profile=args.profile)
                print(f"\nProfiled run (py-spy --idle at 100 Hz on every worker and sandbox, {args.profile:.0f} s, same "
                      f"users): {sum(len(v) for k, v in p['stats'].items() if k in ROUTES) / p['seconds']:.1f} req/s")
                if p.get("profile"):
                    report(servers.finish_profile(p["profile"], args.profile_out))
        verdict = servers.audit_verify()
        print(f"\naudit-verify after the run: {verdict}")
        return status
    finally:
        if clients is not None:
            clients.close()
        servers.stop()


if __name__ == "__main__":
    sys.exit(main())
