"""A standard DICOMweb client (dicomweb-client) against the running portal, logged in by session cookie."""
from __future__ import annotations

import io

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from requests.exceptions import HTTPError

from tests.conftest import PASSWORD, _allow_code_reuse, testdata, totp_now
from tests.imaging_helpers import synth_series


def session_for(app, base: str, user) -> requests.Session:
    """Password, then the authenticator code for the roles that need one (reviewers, coordinators, admins)."""
    s = requests.Session()
    r = s.post(f"{base}/login", data={"email": user.email, "password": PASSWORD}, allow_redirects=False)
    assert r.status_code == 302
    if r.headers["Location"].endswith("/login/mfa"):
        _allow_code_reuse(app, user.email)
        r = s.post(f"{base}/login/mfa", data={"code": totp_now()}, allow_redirects=False)
    assert r.status_code == 302 and "/login" not in r.headers["Location"], r.text
    return s


def client(app, base, case_id, user) -> DICOMwebClient:
    return DICOMwebClient(url=f"{base}/dicomweb/cases/{case_id}", session=session_for(app, base, user))


def test_dicomweb_without_a_session_is_a_plain_401(live_server, make_case):
    case = make_case("assigned", scans=["CT_small.dcm"])
    anonymous = DICOMwebClient(url=f"{live_server}/dicomweb/cases/{case.id}")
    with pytest.raises(HTTPError) as err:
        anonymous.search_for_studies()
    assert err.value.response.status_code == 401 and err.value.response.json()["status"] == 401
    stow = requests.post(f"{live_server}/dicomweb/cases/{case.id}/studies", data=b"x", allow_redirects=False,
                         headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
    assert stow.status_code == 401 and stow.headers["Content-Type"].startswith("application/json")


def test_dicomweb_search_retrieve_render_and_store(app, live_server, make_case, users, tmp_path):
    case = make_case("assigned", scans=["CT_small.dcm"])
    original = testdata("CT_small.dcm")
    ref = dcmread(original)
    dw = client(app, live_server, case.id, users["reviewer"])

    [study] = dw.search_for_studies()
    assert study["0020000D"]["Value"] == [ref.StudyInstanceUID]
    assert study["00080061"]["Value"] == ["CT"]
    [series] = dw.search_for_series(study_instance_uid=ref.StudyInstanceUID)
    assert series["0020000E"]["Value"] == [ref.SeriesInstanceUID]
    [inst] = dw.search_for_instances(study_instance_uid=ref.StudyInstanceUID, series_instance_uid=ref.SeriesInstanceUID)
    assert inst["00080018"]["Value"] == [ref.SOPInstanceUID]

    got = dw.retrieve_instance(ref.StudyInstanceUID, ref.SeriesInstanceUID, ref.SOPInstanceUID)
    assert got.SOPInstanceUID == ref.SOPInstanceUID and got.PixelData == ref.PixelData
    [meta] = dw.retrieve_study_metadata(ref.StudyInstanceUID)
    assert meta["00100010"]["Value"][0]["Alphabetic"] == str(ref.PatientName)
    assert "7FE00010" not in meta or "BulkDataURI" in meta["7FE00010"]
    rendered = dw.retrieve_instance_frames_rendered(ref.StudyInstanceUID, ref.SeriesInstanceUID, ref.SOPInstanceUID,
                                                    [1], media_types=("image/png",))
    assert Image.open(io.BytesIO(rendered)).size == (ref.Columns, ref.Rows)
    [whole] = dw.retrieve_study(ref.StudyInstanceUID)
    assert whole.SOPInstanceUID == ref.SOPInstanceUID

    # STOW-RS: the referring site pushes a new series into the referral.
    pushed = [dcmread(p) for p in synth_series(tmp_path / "stow", 3)]
    with pytest.raises(HTTPError) as refused:
        dw.store_instances(pushed)  # the reviewer may read, not add
    assert refused.value.response.status_code == 403
    sender = client(app, live_server, case.id, users["referring"])
    result = sender.store_instances(pushed)
    assert sorted(item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence) == sorted(d.SOPInstanceUID for d in pushed)
    assert len(dw.search_for_studies()) == 2
    again = sender.store_instances(pushed[:1])  # idempotent: the same instance again is no error and no duplicate
    assert len(again.ReferencedSOPSequence) == 1
    assert len(dw.search_for_instances(study_instance_uid=pushed[0].StudyInstanceUID)) == 3


def test_dicomweb_never_crosses_cases(app, live_server, make_case, users):
    mine = make_case("assigned", scans=["CT_small.dcm"])
    theirs = make_case("assigned", scans=["MR_small.dcm"], by=users["other_referring"])
    mr = dcmread(testdata("MR_small.dcm"))
    ct = dcmread(testdata("CT_small.dcm"))
    outsider = client(app, live_server, theirs.id, users["referring"])
    with pytest.raises(HTTPError) as err:
        outsider.search_for_studies()
    assert err.value.response.status_code == 404
    # Nor through a case the user may see, by naming the other case's UIDs.
    own = client(app, live_server, mine.id, users["referring"])
    assert [s["0020000D"]["Value"][0] for s in own.search_for_studies()] == [ct.StudyInstanceUID]
    assert own.search_for_studies(search_filters={"StudyInstanceUID": mr.StudyInstanceUID}) == []
    with pytest.raises(HTTPError) as err:
        own.retrieve_instance(mr.StudyInstanceUID, mr.SeriesInstanceUID, mr.SOPInstanceUID)
    assert err.value.response.status_code == 404
    with pytest.raises(HTTPError):
        own.retrieve_study_metadata(mr.StudyInstanceUID)


def test_stow_refuses_other_content_and_garbage(app, live_server, make_case, users):
    case = make_case("assigned")
    s = session_for(app, live_server, users["referring"])
    url = f"{live_server}/dicomweb/cases/{case.id}/studies"
    assert s.post(url, data=b"x", headers={"Content-Type": "application/json"}).status_code == 415
    r = s.post(url, data=b"--b\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--b--\r\n",
               headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
    assert r.status_code == 409 and r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    r = s.post(url, data=b"--b\r\nContent-Type: application/dicom\r\n\r\ncut off",
               headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
    assert r.status_code == 400
