"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden from the environment (GUNICORN_*), so one file serves a laptop
benchmark and an 8-core app server. TLS terminates at the proxy in front (see docs/deploy.md).
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One worker per core, 4 threads each: chosen by measurement (benchmarks/README.md, "Serving configuration"):
# on 2 cores, 2x4 spent the least server CPU per request of 2x4, 3x4, 4x4, 2x8 and 4x8 (57 against 72-113 ms)
# with the best throughput; more processes than cores only add switches, idle decode sandboxes and
# connections. Threads let a worker overlap storage/database waits without a second process's memory.
# The database pool follows the threads (config.DB_POOL_SIZE: threads + 1, at least 5).
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
worker_class = "gthread"
# Big study uploads stream through; give them time, but kill truly stuck workers.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 300))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak in a native library (image codecs) cannot grow forever.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 5000))
max_requests_jitter = 500
# Trust X-Forwarded-* only from the proxy on the same host/network.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = None  # the app writes its own JSON access line with the request id
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Import the app once in the master: workers fork with it loaded (faster start, shared pages).
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"


def post_fork(server, worker):
    # A preloaded app must not share database connections across processes.
    from wsgi import app

    app.extensions["db_engine"].dispose(close=False)
