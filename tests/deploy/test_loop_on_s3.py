"""The same referral → letter loop with every blob in the S3-compatible store (moto_server)."""
import io

import boto3
import pytest
from pypdf import PdfReader

from review_portal.imaging.services import series_of_case
from review_portal.letters.services import letters_for_case
from review_portal.storage import S3Storage


@pytest.fixture
def app_overrides(s3_server):
    boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket="portal-loop")
    return dict(STORAGE_BACKEND="s3", S3_BUCKET="portal-loop", S3_ENDPOINT_URL=s3_server,
                S3_ACCESS_KEY_ID="test", S3_SECRET_ACCESS_KEY="test")


def test_letters_scans_and_thumbnails_live_in_the_bucket(app, db, storage, make_case, login_as):
    assert isinstance(storage, S3Storage)
    case = make_case("letter_delivered", scans=["CT_small.dcm"])
    client = login_as("referring")
    letter = letters_for_case(db, case.id)[0]
    pdf = client.get(f"/cases/{case.id}/letters/{letter.id}.pdf")
    assert pdf.status_code == 200
    assert case.reference in PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    series = series_of_case(db, case.id)[0]
    assert series.thumbnail_key and storage.exists(series.thumbnail_key)
    image = client.get(f"/cases/{case.id}/series/{series.id}/slices/0.png")
    assert image.status_code == 200 and image.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert {letter.blob_key, series.thumbnail_key, series.instances[0].blob_key} <= set(storage.iter_keys())
    assert client.get("/readyz").get_json()["checks"]["storage"] == "ok"
