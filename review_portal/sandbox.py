"""Risky work on untrusted files in a small pool of worker processes, each under hard limits.

Decoding an uploaded image is the one place where a small file can ask for a great deal: a 2 MB RLE or
JPEG 2000 stream may declare a frame that needs gigabytes, and a crafted stream may keep a codec busy for
minutes. Run inline, either would take the web process (or the RQ worker) down with it. Here the work runs
in a child process that

* may use at most `memory_mb` beyond what it had after loading its code (RLIMIT_AS on the child): an
  allocation beyond it fails at once with MemoryError, before a page is touched, so a bomb never
  pushes the host towards the OOM killer;
* is given `seconds` of wall-clock time per call, counted by the parent, which kills the child when time is up
  (a codec stuck in C never returns to Python, so a timer inside the child could not stop it).

Why RLIMIT_AS rather than an RSS watchdog thread: the rlimit is enforced by the kernel at the allocation,
while a watchdog polls and can be outrun by one large allocation being filled. Its known false alarms come
from address space that is reserved but never used: glibc's per-thread malloc arenas (64 MB each), BLAS
thread pools and thread stacks. The child therefore caps malloc arenas at 2 (MALLOC_ARENA_MAX in its
environment and mallopt), runs BLAS/OpenMP single-threaded, loads its code (`preload`) first and counts the
budget from the address space it has then, so the limit measures what one file asks for, not how the
interpreter happens to be laid out.

Workers persist (starting one costs a second of imports), one call at a time each, at most `workers`
of them. A worker that hit a limit, crashed, or timed out is killed and replaced on the next call.
Messages are JSON (plus raw bytes for an image): the parent never unpickles anything a child sends.

    sandbox.run("review_portal.imaging.sandboxed:render_in_child", "/path/x.dcm", 0)

raises `Refused(reason)` when the work refused the file itself (any exception with a `.reason`), and
`LimitExceeded(reason)` (a `Refused`) when a limit stopped it. `enabled=False` (SANDBOX_ENABLED=0) runs the same
call in-process, for debugging with a debugger or profiler.
"""
from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import resource
import signal
import subprocess  # nosec B404 - starts only this interpreter on this module, no shell
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

log = logging.getLogger("review_portal.sandbox")

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_STARTUP_SECONDS = 120  # loading numpy, pydicom and the codecs, on a busy machine
_CHILD_ENV = {"MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}
_M_ARENA_MAX = -8  # glibc mallopt parameter


class Refused(Exception):
    """The file was refused; `reason` is for a person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class LimitExceeded(Refused):
    """A memory or time limit stopped the work on this file."""


class SandboxUnavailable(RuntimeError):
    """No worker could be started (a fault of the server, not of the file)."""


class _Gone(Exception):
    """The worker had died before it was given the call (nothing of the file was tried)."""


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    memory_mb: int = 512
    seconds: float = 30.0
    workers: int = 2
    preload: tuple[str, ...] = ()  # "module" or "module:function", imported/called in each worker before its limits


def settings_from_config(config) -> Settings:
    return Settings(
        enabled=bool(config.get("SANDBOX_ENABLED", True)),
        memory_mb=int(config.get("SANDBOX_MEMORY_MB", 512)),
        seconds=float(config.get("SANDBOX_SECONDS", 30)),
        workers=max(1, int(config.get("SANDBOX_WORKERS", 2))),
        preload=tuple(config.get("SANDBOX_PRELOAD", ()) or ()),
    )


def memory_reason(memory_mb: int) -> str:
    return f"needs more than {memory_mb} MB to decode"


def time_reason(seconds: float) -> str:
    return f"takes longer than {seconds:g} second{'' if seconds == 1 else 's'} to decode"


def _resolve(target: str):
    module, _, name = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, name) if name else obj


# -- the parent side ---------------------------------------------------------------------------------

class _Worker:
    def __init__(self, settings: Settings):
        self.settings = settings
        to_parent_r, to_parent_w = os.pipe()
        to_child_r, to_child_w = os.pipe()
        env = dict(os.environ, **_CHILD_ENV)
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        try:
            self.proc = subprocess.Popen(  # nosec B603 - fixed argv: this interpreter, this module, two fd numbers
                [sys.executable, "-c", "from review_portal.sandbox import _child_main; _child_main()",
                 str(to_child_r), str(to_parent_w)],
                pass_fds=(to_child_r, to_parent_w), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            )
        finally:
            os.close(to_child_r)
            os.close(to_parent_w)
        self.inbox = Connection(to_parent_r, writable=False)
        self.outbox = Connection(to_child_w, readable=False)
        try:
            self.outbox.send_bytes(json.dumps({"path": sys.path, "preload": list(settings.preload),
                                               "memory_mb": settings.memory_mb}).encode())
            if not self.inbox.poll(_STARTUP_SECONDS):
                raise SandboxUnavailable("the worker did not start in time")
            hello = json.loads(self.inbox.recv_bytes())
        except (EOFError, OSError, ValueError) as exc:
            self.kill()
            raise SandboxUnavailable(f"the worker could not start: {exc}") from exc
        except BaseException:
            self.kill()
            raise
        if not hello.get("ready"):
            self.kill()
            raise SandboxUnavailable(f"the worker could not start: {hello.get('error', '')}")
        self.baseline_mb = hello.get("baseline_mb")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, target: str, args: tuple, kwargs: dict):
        """Returns (result, keep): keep is False when the worker must be replaced."""
        s = self.settings
        message = json.dumps({"target": target, "args": list(args), "kwargs": kwargs}).encode()
        try:
            self.outbox.send_bytes(message)
        except OSError as exc:
            raise _Gone() from exc
        if not self.inbox.poll(s.seconds):
            raise LimitExceeded(time_reason(s.seconds))
        try:
            header = json.loads(self.inbox.recv_bytes())
            payload = self.inbox.recv_bytes() if header.get("bytes") else None
        except (EOFError, OSError):
            code = self._wait_exit()
            if code in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
                # An allocation failure inside a codec's C/Rust code aborts instead of raising.
                raise LimitExceeded(f"could not be decoded within {s.memory_mb} MB (the decoder stopped)")
            raise LimitExceeded(f"could not be decoded (the decoder stopped, exit status {code})")
        status = header["status"]
        if status == "ok":
            return (payload if header.get("bytes") else header.get("value")), True
        if status == "memory":
            raise LimitExceeded(memory_reason(s.memory_mb))
        if status == "refused":
            raise Refused(header["reason"])
        error = {"ValueError": ValueError, "TypeError": TypeError}.get(header.get("type"), RuntimeError)
        raise error(header.get("message", "the sandboxed call failed"))

    def _wait_exit(self) -> int | None:
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        for conn in (getattr(self, "inbox", None), getattr(self, "outbox", None)):
            if conn is not None:
                try:
                    conn.close()
                except OSError:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process SIGKILL cannot stop
            log.error("sandbox worker %s did not exit after SIGKILL", self.proc.pid)


class Pool:
    """At most `settings.workers` limited workers, started on demand and kept between calls."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._slots = threading.BoundedSemaphore(settings.workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False

    def run(self, target: str, *args, **kwargs):
        if not self.settings.enabled:
            return _call_here(target, args, kwargs)
        with self._slots:
            for attempt in (1, 2):
                worker = self._take()
                keep = False
                try:
                    result, keep = worker.call(target, args, kwargs)
                    return result
                except _Gone as exc:  # died while idle (e.g. killed from outside): once more on a fresh one
                    if attempt == 2:
                        raise SandboxUnavailable("the worker died before it could take the file") from exc
                except Refused as exc:
                    keep = not isinstance(exc, LimitExceeded)
                    if not keep:
                        log.warning("sandbox worker %s replaced: %s", worker.proc.pid, exc.reason)
                    raise
                except (ValueError, TypeError, RuntimeError):
                    keep = worker.alive
                    raise
                finally:
                    self._give_back(worker, keep)

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    self._busy.add(worker)
                    return worker
                worker.kill()
        worker = _Worker(self.settings)
        with self._lock:
            self._busy.add(worker)
        return worker

    def _give_back(self, worker: _Worker, keep: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            if keep and not self._closed and worker.alive:
                self._idle.append(worker)
                return
        worker.kill()

    def close(self, *, busy_too: bool = True) -> None:
        """End the idle workers, and the busy ones too unless `busy_too` is False (they end when their call returns)."""
        with self._lock:
            self._closed = True
            workers, self._idle = self._idle + (list(self._busy) if busy_too else []), []
            if busy_too:
                self._busy = set()
        for worker in workers:
            worker.kill()

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._idle + list(self._busy)]


def _call_here(target: str, args, kwargs):
    try:
        return _resolve(target)(*args, **kwargs)
    except Refused:
        raise
    except MemoryError as exc:
        raise LimitExceeded("needs more memory than this process has to decode") from exc
    except Exception as exc:
        if isinstance(getattr(exc, "reason", None), str):
            raise Refused(exc.reason) from exc
        raise


_pool: Pool | None = None
_pool_lock = threading.Lock()


def configure(settings: Settings) -> Pool:
    """Make `settings` the process's pool (the same workers are kept when nothing changed)."""
    global _pool
    with _pool_lock:
        old = _pool
        if old is not None and old.settings == settings:
            return old
        _pool = Pool(settings)
    if old is not None:
        old.close(busy_too=False)
    return _pool


def init_app(app) -> None:
    app.extensions["sandbox"] = configure(settings_from_config(app.config))


def current() -> Pool:
    with _pool_lock:
        pool = _pool
    return pool if pool is not None else configure(Settings())


def enabled() -> bool:
    return current().settings.enabled


def run(target: str, *args, **kwargs):
    return current().run(target, *args, **kwargs)


@atexit.register
def shutdown() -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def _forget_after_fork() -> None:
    # A forked process (gunicorn, RQ's work horse) must not talk to its parent's workers: start afresh.
    global _pool, _pool_lock
    _pool_lock = threading.Lock()
    if _pool is not None:
        _pool = Pool(_pool.settings)


os.register_at_fork(after_in_child=_forget_after_fork)


# -- the child side ----------------------------------------------------------------------------------

def _address_space() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover - not Linux


def _caused_by_memory(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, MemoryError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _answer(target: str, args, kwargs) -> tuple[dict, bytes, bytes | None]:
    header, payload = _outcome(target, args, kwargs)
    try:
        encoded = json.dumps(header).encode()
    except (TypeError, ValueError) as exc:
        header, payload = {"status": "error", "type": "TypeError", "message": f"result is not plain data: {exc}"}, None
        encoded = json.dumps(header).encode()
    return header, encoded, payload


def _outcome(target: str, args, kwargs) -> tuple[dict, bytes | None]:
    try:
        result = _resolve(target)(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if _caused_by_memory(exc):
            return {"status": "memory"}, None
        if isinstance(getattr(exc, "reason", None), str):
            return {"status": "refused", "reason": exc.reason}, None
        return {"status": "error", "type": type(exc).__name__, "message": str(exc)[:2000]}, None
    if isinstance(result, (bytes, bytearray, memoryview)):
        return {"status": "ok", "bytes": True}, bytes(result)
    return {"status": "ok", "value": result}, None


def _child_main() -> None:
    inbox = Connection(int(sys.argv[1]), writable=False)
    outbox = Connection(int(sys.argv[2]), readable=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which ends the pool
    hello = json.loads(inbox.recv_bytes())
    sys.path[:0] = [p for p in hello["path"] if p not in sys.path]
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass
    try:
        for entry in hello["preload"]:
            loaded = _resolve(entry)
            if ":" in entry:
                loaded()
        base = _address_space()
        limit = base + int(hello["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception as exc:  # noqa: BLE001
        outbox.send_bytes(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
        return
    outbox.send_bytes(json.dumps({"ready": True, "baseline_mb": base >> 20}).encode())
    while True:
        try:
            task = json.loads(inbox.recv_bytes())
        except (EOFError, OSError):
            return
        header, encoded, payload = _answer(task["target"], task["args"], task["kwargs"])
        outbox.send_bytes(encoded)
        if payload is not None:
            outbox.send_bytes(payload)
        if header["status"] == "memory":
            return  # a heap that has just hit its limit is not reused; the parent starts a fresh worker
