"""The RQ worker's entry point: build the app once per worker process, then run jobs in it (see jobs.execute)."""
from review_portal import jobs
from review_portal.app import create_app

_app = None


def execute(job_id: int) -> str:
    global _app
    if _app is None:
        _app = create_app()
    return jobs.execute(job_id, _app)
