"""Job handlers used only by the worker tests (loaded by the worker via PORTAL_JOB_MODULES)."""
import time
from pathlib import Path

from review_portal.auth.models import Institution
from review_portal.jobs import handler


@handler("test.always_fails")
def always_fails(db, storage, *, now, message: str):
    raise ValueError(message)


@handler("test.add_institution")
def add_institution(db, storage, *, now, name: str, started_file: str = "", pause: float = 0):
    """Writes a row, then (the first time only) announces itself and pauses so a test can kill the worker."""
    db.add(Institution(name=name))
    db.flush()
    if started_file and not Path(started_file).exists():
        Path(started_file).write_text("started")
        time.sleep(pause)
    return f"added {name}"
