"""A failed request deletes only the blobs no committed row refers to, checked in a fresh transaction.

Two requests store the same bytes (same sha256, same key). The first stored them first (so they are in its
journal); the second commits a document that refers to them; then the first fails. Its clean-up must not
delete the blob the second one committed. Runs on SQLite, and on PostgreSQL with PORTAL_TEST_DB=postgresql.
"""
import io
import threading

import pytest
from sqlalchemy import select

from review_portal.cases.models import Document
from review_portal.errors import InvalidInput


def _pdf(text: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=f"<p>{text}</p>").write_pdf()


@pytest.fixture
def app_overrides():
    # The failing request is anonymous, so it holds no database write (SQLite would make the other one wait).
    return {"PUBLIC_ENDPOINTS_EXTRA": ("store_then_fail",)}


def _install_failing_route(app, data: bytes, during=None):
    def store_then_fail():
        key, created = app.extensions["storage"].put_bytes(data)
        assert created  # this request stored the bytes first: they are in its journal
        if during is not None:
            during()
        raise InvalidInput("This request fails after storing a file.")

    app.add_url_rule("/_test/store-then-fail", "store_then_fail", store_then_fail, methods=["POST"])


def test_a_failed_request_keeps_a_blob_another_request_committed(app, db, storage, make_case, login_as):
    pdf = _pdf("Operative note (synthetic)")
    case = make_case("awaiting_information")
    answered = {}

    def the_other_request():
        def run():
            referrer = login_as("referring")
            answered["response"] = referrer.post(
                f"/cases/{case.id}/information-requests/answer", content_type="multipart/form-data",
                data={"answer": "Attached.", "documents": [(io.BytesIO(pdf), "operative-note.pdf")]})
            answered["client"] = referrer
        t = threading.Thread(target=run)
        t.start()
        t.join(60)

    _install_failing_route(app, pdf, during=the_other_request)
    failed = app.test_client().post("/_test/store-then-fail")
    assert failed.status_code == 400
    assert answered["response"].status_code == 302  # the other request committed its document meanwhile

    db.expire_all()
    doc = db.scalar(select(Document).where(Document.case_id == case.id))
    assert storage.exists(doc.sha256), "the failed request deleted a blob a committed document refers to"
    download = answered["client"].get(f"/cases/{case.id}/documents/{doc.id}")
    assert download.status_code == 200 and download.data == pdf


def test_a_failed_request_still_removes_a_blob_nothing_refers_to(app, storage):
    data = b"bytes only the failing request ever stored"
    _install_failing_route(app, data)
    assert app.test_client().post("/_test/store-then-fail").status_code == 400
    from review_portal.storage import sha256_of

    assert not storage.exists(sha256_of(io.BytesIO(data)))
