"""The load benchmark's client: simulated users in separate processes, each with one thread per user.

benchmarks/load.py starts CLIENT_PROCESSES of these with multiprocessing and drives them over a pipe:

    ("login", [user, ...])           log these users in (once per process lifetime; TOTP codes are not reusable)
    ("run", (indices, seconds, mode)) run those users for `seconds`; mode "mix" is the browser-like loop,
                                      mode "only:<route>" repeats one route without think time (CPU phases)
    ("reset", None)                  drop keep-alive connections (after a server restart)
    None                             exit

and gets back, per run, {"stats": {route: [seconds, ...]}, "errors": {route: [text, ...]}}. The client is
the standard library's keep-alive http.client: a browser keeps one connection per host, and so does a user here.
"""
from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
from collections import defaultdict
from urllib.parse import urlencode

PASSWORD = "load-test-password-1"
# Reviewers must pass TOTP (issue 6): every simulated reviewer is enrolled with this synthetic key.
TOTP_SECRET = "LOADTESTLOADTESTLOADTESTLOADTEST"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
VERSION = re.compile(r'name="version"[^>]*value="(\d*)"')
MAX_ERRORS_KEPT = 20


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.stats: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.error_counts: dict[str, int] = defaultdict(int)

    def ok(self, label: str, seconds: float) -> None:
        with self.lock:
            self.stats[label].append(seconds)

    def error(self, label: str, text: str) -> None:
        with self.lock:
            self.error_counts[label] += 1
            if len(self.errors[label]) < MAX_ERRORS_KEPT:
                self.errors[label].append(text)

    def result(self) -> dict:
        return {"stats": dict(self.stats), "errors": dict(self.errors), "error_counts": dict(self.error_counts)}


class User:
    """One person with one browser: a cookie jar and one keep-alive connection per host."""

    def __init__(self, spec: dict, ports: list[int]):
        self.spec, self.ports = spec, ports
        self.home = spec["index"] % len(ports)
        self.conns: dict[int, http.client.HTTPConnection] = {}
        self.cookies: dict[str, str] = {}
        self.location = ""
        self.recorder: Recorder | None = None
        self.frames: dict[int, list[str]] = {}  # series id -> pixel URLs, from the series JSON
        self.logged_in = False
        self.stop: threading.Event | None = None  # set: the phase is over, make no more requests

    def conn(self, port: int) -> http.client.HTTPConnection:
        if port not in self.conns:
            self.conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        return self.conns[port]

    def reset(self) -> None:
        for c in self.conns.values():
            c.close()
        self.conns.clear()

    def request(self, label, method, path, body=None, expect=(200,), record=True, port=None):
        port = port or self.ports[self.home]
        if self.stop is not None and self.stop.is_set():
            return None, b""
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        recorder = self.recorder
        started = time.perf_counter()
        for attempt in (1, 2):
            conn = self.conn(port)
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionRefusedError) as exc:
                # The server closed an idle keep-alive connection just as we reused it: like a browser,
                # reconnect and send once more (only then is it an error).
                conn.close()
                if attempt == 2:
                    if recorder and record:
                        recorder.error(label, f"{type(exc).__name__}: {exc}")
                    return None, b""
                started = time.perf_counter()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if recorder and record:
                    recorder.error(label, f"{type(exc).__name__}: {exc}")
                return None, b""
        elapsed = time.perf_counter() - started
        self.location = response.getheader("Location", "")
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        if recorder and record:
            if response.status in expect:
                recorder.ok(label, elapsed)
            else:
                recorder.error(label, f"HTTP {response.status} {method} {path}")
        return response.status, data

    def login(self) -> bool:
        email = self.spec["email"]
        _, page = self.request("login", "GET", "/login", record=False)
        token = CSRF.search(page.decode(errors="replace"))
        status, _ = self.request("login", "POST", "/login", urlencode(
            {"csrf_token": token.group(1) if token else "", "email": email, "password": PASSWORD}),
            expect=(302,), record=False)
        if status != 302:
            return False
        if self.location.endswith("/login/mfa"):
            import pyotp

            _, page = self.request("login", "GET", "/login/mfa", record=False)
            token = CSRF.search(page.decode(errors="replace"))
            status, _ = self.request("login", "POST", "/login/mfa", urlencode(
                {"csrf_token": token.group(1) if token else "", "code": pyotp.TOTP(TOTP_SECRET).now()}),
                expect=(302,), record=False)
            if status != 302 or self.location.endswith("/login/mfa"):
                return False
        self.logged_in = True
        return True


# ------------------------------------------------------------------ what a user does


def frame_urls(user: User, case_id: int, series_id: int, port: int, pixels: str) -> list[tuple[str, str]]:
    """The series JSON, and from it what the viewer fetches while scrolling: (route label, URL) per frame."""
    status, body = user.request("series json", "GET", f"/cases/{case_id}/series/{series_id}.json", port=port)
    if status != 200:
        return []
    info = json.loads(body)
    frames = info.get("frames") or []
    pixel_urls = [f.get("pixels_url") if isinstance(f, dict) else f for f in frames]
    listed = bool(pixel_urls) and all(pixel_urls)
    if pixels == "yes" or (pixels == "auto" and listed):
        if not listed:
            raise SystemExit("--pixels yes: the series JSON lists no frames[].pixels_url")
        return [("pixels", u) for u in pixel_urls]
    # The viewer asks for JPEG slices in the file's own window while scrolling (static/js/viewer.js).
    return [("rendered slice", f"{info['render_base']}{i}.jpg") for i in range(info["count"])]


def open_viewer(user: User, case_id: int, series_id: int, port: int, pixels: str) -> None:
    """The viewer page, its series JSON, then every frame in order (the viewer preloads while you scroll).

    No HTTP cache: patient images are no-store, so every opening fetches its frames again."""
    user.request("viewer page", "GET", f"/cases/{case_id}/series/{series_id}", port=port)
    for label, url in frame_urls(user, case_id, series_id, port, pixels):
        user.request(label, "GET", url, port=port)


def save_draft(user: User, case_id: int, n: int, port: int, label: str = "save draft") -> None:
    _, form = user.request("opinion form", "GET", f"/cases/{case_id}/opinion", port=port)
    html = form.decode(errors="replace")
    token, version = CSRF.search(html), VERSION.search(html)
    user.request(label, "POST", f"/cases/{case_id}/opinion", urlencode({
        "csrf_token": token.group(1) if token else "", "version": version.group(1) if version else "",
        "diagnosis_concordance": "refined", "plan_concordance": "modify",
        "reviewer_diagnosis": f"Refined diagnosis, pass {n}.", "recommended_plan": "Modified plan.",
        "rationale": "Because.", "further_tests": ""}), expect=(302,), port=port)


def mix_loop(user: User, stop: threading.Event, think: float, pixels: str) -> None:
    spec, n = user.spec, 0
    while not stop.is_set():
        # Alternate hosts from one round to the next: a session made on one host is used on the other.
        port = user.ports[(user.home + n) % len(user.ports)]
        n += 1
        user.request("worklist", "GET", "/cases", port=port)
        if spec["kind"] == "reviewer":
            case_id, series_id = spec["cases"][n % len(spec["cases"])]
            user.request("case page", "GET", f"/cases/{case_id}", port=port)
            open_viewer(user, case_id, series_id, port, pixels)
            save_draft(user, case_id, n, port)
        elif spec.get("letter"):
            case_id, letter_id = spec["letter"]
            user.request("case page", "GET", f"/cases/{case_id}", port=port)
            user.request("download letter", "GET", f"/cases/{case_id}/letters/{letter_id}.pdf", port=port)
        stop.wait(random.uniform(0, 2 * think))


def only_loop(user: User, stop: threading.Event, route: str, pixels: str) -> None:
    """One route again and again, no think time: CPU per request of that route alone."""
    spec, n = user.spec, 0
    case_id, series_id = spec["cases"][0] if spec.get("cases") else (spec.get("letter") or (None, None))
    urls: list[tuple[str, str]] = []
    if route in ("rendered slice", "pixels"):
        user.recorder, saved = None, user.recorder  # discovering the URLs is not part of the phase
        urls = [u for u in frame_urls(user, case_id, series_id, user.ports[user.home], pixels) if u[0] == route]
        user.recorder = saved
        if not urls:
            return
    while not stop.is_set():
        port = user.ports[(user.home + n) % len(user.ports)]
        n += 1
        if route == "healthz":
            user.request(route, "GET", "/healthz", port=port)
        elif route == "worklist":
            user.request(route, "GET", "/cases", port=port)
        elif route == "case page":
            user.request(route, "GET", f"/cases/{case_id}", port=port)
        elif route == "viewer page":
            user.request(route, "GET", f"/cases/{case_id}/series/{series_id}", port=port)
        elif route == "series json":
            user.request(route, "GET", f"/cases/{case_id}/series/{series_id}.json", port=port)
        elif route in ("rendered slice", "pixels"):
            label, url = urls[n % len(urls)]
            user.request(label, "GET", url, port=port)
        elif route == "opinion form":
            user.request(route, "GET", f"/cases/{case_id}/opinion", port=port)
        elif route == "save draft":
            save_draft(user, case_id, n, port)
        elif route == "download letter":
            user.request(route, "GET", f"/cases/{case_id}/letters/{spec['letter'][1]}.pdf", port=port)
        else:
            raise ValueError(route)


def health_probe(user: User, stop: threading.Event, interval: float = 0.1) -> None:
    """The noise floor: /healthz does no database or session work, so its latency is the machine's and gunicorn's."""
    n = 0
    while not stop.is_set():
        port = user.ports[n % len(user.ports)]
        n += 1
        user.request("healthz", "GET", "/healthz", port=port)
        stop.wait(interval)


# ------------------------------------------------------------------ the process


def _log_in(user: User, failed: list[str]) -> None:
    if not user.logged_in and not user.login():
        failed.append(user.spec["email"])


def client_main(conn, specs: list[dict], ports: list[int], think: float, pixels: str, probe: bool) -> None:
    users = {s["index"]: User(s, ports) for s in specs}
    prober = User({"index": 0, "kind": "probe", "email": ""}, ports)
    while True:
        msg = conn.recv()
        if msg is None:
            break
        kind, payload = msg
        if kind == "reset":
            for u in users.values():
                u.reset()
            prober.reset()
            conn.send("ok")
        elif kind == "login":
            failed: list[str] = []
            threads = []
            for i in payload:
                t = threading.Thread(target=_log_in, args=(users[i], failed))
                t.start()
                threads.append(t)
                if len(threads) >= 8:
                    threads.pop(0).join()
            for t in threads:
                t.join()
            conn.send(failed)
        elif kind == "run":
            indices, seconds, mode = payload
            recorder = Recorder()
            stop = threading.Event()
            threads = []
            for i in indices:
                u = users[i]
                u.recorder, u.stop = recorder, stop
                if mode == "mix":
                    target, args = mix_loop, (u, stop, think, pixels)
                else:
                    target, args = only_loop, (u, stop, mode.split(":", 1)[1], pixels)
                threads.append(threading.Thread(target=target, args=args, daemon=True))
            if probe and mode == "mix":
                prober.recorder, prober.stop = recorder, stop
                threads.append(threading.Thread(target=health_probe, args=(prober, stop), daemon=True))
            started = time.perf_counter()
            for t in threads:
                t.start()
            stop.wait(seconds)
            stop.set()
            for t in threads:
                t.join(timeout=120)
            result = recorder.result()
            result["elapsed"] = time.perf_counter() - started
            for u in list(users.values()) + [prober]:
                u.recorder, u.stop = None, None
            conn.send(result)
