"""The job interface: inline by default, and RQ on a real Redis with a real `rq worker` process."""
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from review_portal import jobs
from review_portal.auth.models import Institution
from review_portal.cases.models import Case
from review_portal.letters.services import letters_for_case
from review_portal.opinions.services import OpinionDraft, save_draft
from tests.conftest import NOW, PASSWORD

ROOT = Path(__file__).resolve().parents[2]
_queues = itertools.count()


def _institutions(db, name):
    db.rollback()
    return db.scalar(select(func.count()).select_from(Institution).where(Institution.name == name))


class TestInline:
    @pytest.fixture
    def app_overrides(self):
        return {"JOB_MODULES": ["tests.job_handlers"]}

    def test_runs_at_once_in_the_callers_transaction(self, app, db, storage):
        with app.app_context():
            job = jobs.submit(db, storage, "test.add_institution", now=NOW, name="Inline Clinic")
            assert (job.status, job.attempts, job.result) == ("done", 1, "added Inline Clinic")
            db.rollback()  # the caller's transaction decides: nothing was committed
        assert _institutions(db, "Inline Clinic") == 0

    def test_a_failing_job_is_retried_then_shown_failed_with_its_reason(self, app, db, storage):
        with app.app_context():
            job = jobs.submit(db, storage, "test.always_fails", now=NOW, max_attempts=3, message="scanner offline")
            db.commit()
        job = db.get(jobs.BackgroundJob, job.id)
        assert (job.status, job.attempts, job.status_label) == ("failed", 3, "Failed")
        assert job.error == "ValueError: scanner offline"

    def test_arguments_must_be_plain_values(self, app, db, storage):
        with pytest.raises(TypeError, match="plain value"):
            jobs.submit(db, storage, "test.add_institution", now=NOW, name=db)
        with pytest.raises(KeyError):
            jobs.submit(db, storage, "no.such.job", now=NOW)


class TestRQWorker:
    @pytest.fixture
    def app_overrides(self, redis_server):
        return {"REDIS_URL": redis_server, "JOB_QUEUE": f"test-{next(_queues)}", "JOB_MODULES": ["tests.job_handlers"]}

    def _worker(self, app, *, burst: bool):
        env = dict(os.environ, PORTAL_CONFIG="test", DATABASE_URL=app.config["DATABASE_URL"],
                   STORAGE_DIR=str(app.config["STORAGE_DIR"]), REDIS_URL=app.config["REDIS_URL"],
                   JOB_QUEUE=app.config["JOB_QUEUE"],  # jobs a job submits go to the queue this worker serves
                   PORTAL_JOB_MODULES="tests.job_handlers", PYTHONPATH=str(ROOT))
        cmd = [str(Path(sys.executable).parent / "rq"), "worker", "--url", app.config["REDIS_URL"],
               "--worker-class", "rq.worker.SimpleWorker", "--quiet", app.config["JOB_QUEUE"]]
        if burst:
            cmd.append("--burst")
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def _run_burst(self, app):
        proc = self._worker(app, burst=True)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode(errors="replace")

    def test_letter_is_rendered_by_the_worker_after_signing(self, app, db, users, make_case, login_as):
        case = make_case("in_review")
        save_draft(db, case, OpinionDraft("refined", "modify", "Refined.", "Plan.", "Why."), based_on_version=0,
                   by=users["reviewer"], ip="127.0.0.1", now=NOW)
        db.commit()
        reviewer = login_as("reviewer")
        response = reviewer.post(f"/cases/{case.id}/opinion/sign", data={"attest": "y", "password": PASSWORD},
                                 follow_redirects=True)
        assert "The letter is being prepared" in response.get_data(as_text=True)
        db.rollback()
        assert db.get(Case, case.id).status == "opinion_signed" and letters_for_case(db, case.id) == []
        [job] = jobs.jobs_for_case(db, case.id)
        assert (job.name, job.status) == ("letters.issue", "queued")
        assert app.extensions["jobs"].queue.count == 1

        self._run_burst(app)
        db.rollback()
        db.expire_all()
        assert db.get(Case, case.id).status == "letter_delivered"
        [letter] = letters_for_case(db, case.id)
        assert letter.sha256 and db.get(jobs.BackgroundJob, job.id).status == "done"
        # Running the job again (a duplicate delivery from the queue) changes nothing.
        app.extensions["jobs"].dispatch([job.id])
        self._run_burst(app)
        db.rollback()
        assert len(letters_for_case(db, case.id)) == 1

    def test_uploaded_scans_are_read_by_the_worker_and_the_case_page_shows_it(self, app, db, users, make_case,
                                                                              login_as):
        from review_portal.imaging.models import IngestJob, Instance, Series, Study
        from tests.conftest import testdata

        case = make_case("in_review")
        referrer = login_as("referring")
        with open(testdata("CT_small.dcm"), "rb") as ct, open(testdata("MR_small.dcm"), "rb") as mr:
            r = referrer.post(f"/cases/{case.id}/scans", data={"scans": [(ct, "ct.dcm"), (mr, "mr.dcm")]},
                              content_type="multipart/form-data")
        assert r.status_code == 302
        db.rollback()
        [ingest] = db.scalars(select(IngestJob).where(IngestJob.case_id == case.id)).all()
        assert ingest.status == "queued"  # stored, waiting for the worker: nothing indexed yet
        page = referrer.get(f"/cases/{case.id}").get_data(as_text=True)
        assert "Reading uploaded scans" in page and "Waiting" in page

        self._run_burst(app)
        db.rollback()
        db.expire_all()
        assert db.get(IngestJob, ingest.id).status == "done"
        instances = db.scalar(select(func.count()).select_from(Instance).join(Series).join(Study)
                              .where(Study.case_id == case.id))
        assert instances == 2
        # The worker's ingest queued the thumbnails; the same burst made them.
        assert all(s.thumbnail_key for s in db.scalars(select(Series).join(Study).where(Study.case_id == case.id)))
        assert "Reading uploaded scans" not in referrer.get(f"/cases/{case.id}").get_data(as_text=True)

    def test_failures_are_retried_a_bounded_number_of_times_then_failed_with_reason(self, app, db, storage):
        with app.app_context():
            job = jobs.submit(db, storage, "test.always_fails", now=NOW, max_attempts=2, message="PACS unreachable")
            db.commit()  # dispatches to Redis
        self._run_burst(app)
        db.rollback()
        job = db.get(jobs.BackgroundJob, job.id)
        db.refresh(job)
        assert (job.status, job.attempts, job.error) == ("failed", 2, "ValueError: PACS unreachable")

    def test_a_worker_killed_mid_job_loses_nothing_and_the_job_reruns_once(self, app, db, storage, tmp_path):
        started = tmp_path / "started"
        with app.app_context():
            job = jobs.submit(db, storage, "test.add_institution", now=NOW, name="Killed Clinic",
                              started_file=str(started), pause=60)
            db.commit()
        worker = self._worker(app, burst=False)
        deadline = time.monotonic() + 60
        while not started.exists():
            assert worker.poll() is None and time.monotonic() < deadline, "worker never started the job"
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)  # mid-job: its row is written but not committed
        worker.wait()
        db.rollback()
        db.expire_all()
        assert _institutions(db, "Killed Clinic") == 0
        assert db.get(jobs.BackgroundJob, job.id).status == "running"

        with app.app_context():
            assert jobs.requeue_abandoned(db, now=NOW) == [job.id]
        self._run_burst(app)
        db.expire_all()
        assert _institutions(db, "Killed Clinic") == 1
        done = db.get(jobs.BackgroundJob, job.id)
        assert (done.status, done.result) == ("done", "added Killed Clinic")
