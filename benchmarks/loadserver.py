"""The load benchmark's servers: throw-away PostgreSQL (+ Redis), one or more gunicorn instances, py-spy.

Used by benchmarks/load.py. Every process started here is stopped by Servers.stop().
"""
from __future__ import annotations

import http.client
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _test_servers():
    """tests/servers.py by path: tests/ is a namespace package, and a site-packages `tests` can shadow it."""
    import importlib.util

    if "portal_test_servers" not in sys.modules:
        spec = importlib.util.spec_from_file_location("portal_test_servers", ROOT / "tests" / "servers.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["portal_test_servers"] = module
        spec.loader.exec_module(module)
    return sys.modules["portal_test_servers"]


def pct(values, p) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and of their children that have been reaped (psutil's children_*).

    A gunicorn worker recycled by max_requests is reaped by the master, so its CPU stays counted; the live
    children are listed themselves, so nothing is counted twice."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + getattr(t, "children_user", 0) + getattr(t, "children_system", 0)
    return total


def tree(pid: int) -> list[int]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [pid] + [c.pid for c in p.children(recursive=True)]
    except psutil.Error:
        return []


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"gunicorn on port {port} did not become ready")
        time.sleep(0.2)


class Servers:
    def __init__(self, hosts: int = 1, redis: bool = False):
        free_port = _test_servers().free_port
        self.hosts, self.want_redis = hosts, redis
        self.work = Path(tempfile.mkdtemp(prefix="portal-load-"))
        self.store = self.work / "store"
        self.ports = [free_port() for _ in range(hosts)]
        self.pg = self.redis = None
        self.gunicorns: list[subprocess.Popen] = []
        self.rq: subprocess.Popen | None = None
        self.url = ""
        self.workers = self.threads = None

    def start_database(self) -> str:
        servers = _test_servers()
        start_postgres, start_redis = servers.start_postgres, servers.start_redis
        self.pg = start_postgres()
        self.url = self.pg.create_database("portal_load")
        if self.want_redis:
            self.redis = start_redis()
        return self.url

    def env(self) -> dict:
        env = dict(os.environ, PORTAL_CONFIG="production", SECRET_KEY=self.secret, DATABASE_URL=self.url,
                   STORAGE_DIR=str(self.store), LOG_LEVEL="WARNING")
        if self.redis is not None:
            env["REDIS_URL"] = f"redis://127.0.0.1:{self.redis.port}/0"
        return env

    secret = secrets.token_hex(32)

    def start_app(self, workers: int | None, threads: int | None) -> None:
        """One gunicorn per port with gunicorn.conf.py; None keeps the file's default for that setting."""
        self.workers, self.threads = workers, threads
        for port in self.ports:
            env = dict(self.env(), GUNICORN_BIND=f"127.0.0.1:{port}")
            if workers:
                env["GUNICORN_WORKERS"] = str(workers)
            if threads:
                env["GUNICORN_THREADS"] = str(threads)
            self.gunicorns.append(subprocess.Popen([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                                                   cwd=ROOT, env=env))
        for port, proc in zip(self.ports, self.gunicorns):
            _wait_ready(port, proc)
        if self.workers is None or self.threads is None:  # report what gunicorn.conf.py chose
            conf = _conf()
            self.workers, self.threads = self.workers or int(conf["workers"]), self.threads or int(conf["threads"])
        if self.redis is not None and self.rq is None:
            self.rq = subprocess.Popen([str(BIN / "rq"), "worker", "--url", self.env()["REDIS_URL"],
                                        os.environ.get("JOB_QUEUE", "portal")], cwd=ROOT, env=self.env(),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart_app(self, workers: int, threads: int) -> None:
        self._stop_gunicorns()
        self.start_app(workers, threads)

    def server_pids(self) -> list[int]:
        return [pid for g in self.gunicorns for pid in tree(g.pid)]

    def pg_pids(self) -> list[int]:
        if self.pg is None:
            return []
        try:
            master = int((self.pg.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return tree(master)

    # ------------------------------------------------------------------ seed cache

    def save_seed(self, directory: Path, specs: list[dict]) -> None:
        """Keep the seeded database (pg_dump) and storage, so the next run with the same data skips seeding."""
        import json

        bindir = _test_servers()._pg_bindir()
        tmp = directory.with_name(directory.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        subprocess.run([str(bindir / "pg_dump"), "-Fc", "-f", str(tmp / "db.dump"), "-d", self._libpq()], check=True)
        shutil.copytree(self.store, tmp / "store", symlinks=True)
        (tmp / "specs.json").write_text(json.dumps(specs))
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)

    def load_seed(self, directory: Path) -> list[dict] | None:
        import json

        if not (directory / "specs.json").exists():
            return None
        bindir = _test_servers()._pg_bindir()
        subprocess.run([str(bindir / "pg_restore"), "--no-owner", "-d", self._libpq(), str(directory / "db.dump")],
                       check=True)
        shutil.rmtree(self.store, ignore_errors=True)
        shutil.copytree(directory / "store", self.store, symlinks=True)
        return json.loads((directory / "specs.json").read_text())

    def _libpq(self) -> str:
        return f"postgresql://{self.pg.user}@127.0.0.1:{self.pg.port}/portal_load"

    # ------------------------------------------------------------------ py-spy

    def start_profile(self, seconds: float) -> dict | None:
        spy = BIN / "py-spy"
        if not spy.exists():
            found = shutil.which("py-spy")
            if not found:
                print("py-spy is not installed (pip install py-spy): no profile", flush=True)
                return None
            spy = Path(found)
        procs = []
        for n, g in enumerate(self.gunicorns):
            out = self.work / f"profile-{n}.txt"
            # --subprocesses: every worker and its decode sandbox; --idle: threads waiting on PostgreSQL count too;
            # raw: one collapsed stack per line with its sample count.
            procs.append((subprocess.Popen([str(spy), "record", "--pid", str(g.pid), "--subprocesses", "--idle",
                                            "--duration", str(int(seconds)), "--rate", "100", "--format", "raw",
                                            "--output", str(out), "--nonblocking"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out))
        return {"procs": procs}

    def finish_profile(self, spy: dict, keep: str = "") -> str:
        texts = []
        for proc, out in spy["procs"]:
            _, err = proc.communicate(timeout=300)
            if proc.returncode:
                print(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
            if out.exists():
                texts.append(out.read_text())
        raw = "".join(texts)
        if keep:
            Path(keep).write_text(raw)
        return raw

    # ------------------------------------------------------------------ after the run

    def audit_verify(self) -> str:
        r = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "audit-verify"], cwd=ROOT, env=self.env(),
                           capture_output=True, text=True, timeout=600, check=False)
        return (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else f"exit {r.returncode}"

    def _stop_gunicorns(self) -> None:
        for g in self.gunicorns:
            if g.poll() is None:
                g.terminate()
        for g in self.gunicorns:
            try:
                g.wait(timeout=30)
            except subprocess.TimeoutExpired:
                g.kill()
                g.wait()
        self.gunicorns = []

    def stop(self) -> None:
        self._stop_gunicorns()
        if self.rq is not None and self.rq.poll() is None:
            self.rq.terminate()
            try:
                self.rq.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.rq.kill()
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def _conf() -> dict:
    import runpy

    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
