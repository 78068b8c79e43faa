"""Who owns a file in the store's temporary area, so that no host's sweep removes another's upload in flight.

Several hosts may share one storage directory. Each names what it creates there `HOST-PID-random`
(PORTAL_HOST_ID, else the host name), and holds a POSIX lock (fcntl, which NFS forwards to the server) on a
`.owner.lock` file in each scratch directory for as long as the directory is in use. A sweep then:

* never removes a scratch directory whose lock another process holds, on any host, however old it looks;
* never removes an entry of this host whose process is still alive;
* removes the rest only once nothing in it changed for longer than the longest upload (as before).
"""
from __future__ import annotations

import fcntl
import os
import re
import socket
import tempfile
import threading
from pathlib import Path

LOCK_NAME = ".owner.lock"
_held: dict[str, int] = {}  # scratch directories this process holds: path -> the locked descriptor
_held_lock = threading.Lock()


def host_id() -> str:
    raw = os.environ.get("PORTAL_HOST_ID") or socket.gethostname() or "host"
    return re.sub(r"[^A-Za-z0-9.-]", "_", raw)[:40]


def prefix() -> str:
    return f"{host_id()}-{os.getpid()}-"


def mkstemp(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=directory, prefix=prefix())


def make_workdir(directory: Path) -> Path:
    """A scratch directory, locked by this process until release() (called when it is removed)."""
    path = Path(tempfile.mkdtemp(dir=directory, prefix=prefix()))
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    with _held_lock:
        _held[str(path)] = fd
    return path


def release(path: Path) -> None:
    with _held_lock:
        fd = _held.pop(str(path), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the lock


def in_use(path: Path) -> bool:
    """Is this entry owned by a live process: this one, another process of this host, or a lock holder anywhere?"""
    with _held_lock:
        if str(path) in _held:
            return True  # ours (probing our own lock would release it: POSIX locks are per process)
    match = re.match(r"^(.+)-(\d+)-", path.name)
    if match and match.group(1) == host_id() and _alive(int(match.group(2))):
        return True
    lock = path / LOCK_NAME
    if not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True  # another process, perhaps on another host, holds it
    finally:
        os.close(fd)
    return False


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
