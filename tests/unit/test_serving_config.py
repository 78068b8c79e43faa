"""The serving configuration stays consistent: each gunicorn thread can hold its own database connection."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, runpy, config; g = runpy.run_path('gunicorn.conf.py'); "
    "print(json.dumps({'workers': g['workers'], 'threads': g['threads'], 'pool': config.Config.DB_POOL_SIZE}))"
)


def _settings(**env) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DB_POOL"))}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def test_the_default_pool_holds_a_connection_per_thread():
    s = _settings()
    assert s["pool"] >= s["threads"]


def test_more_threads_raise_the_default_pool():
    s = _settings(GUNICORN_THREADS="12")
    assert s["threads"] == 12
    assert s["pool"] >= 12


def test_an_explicit_pool_size_is_kept():
    assert _settings(GUNICORN_THREADS="8", DB_POOL_SIZE="3")["pool"] == 3
