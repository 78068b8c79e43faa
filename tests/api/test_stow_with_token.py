"""A standard DICOMweb client pushes and reads studies with an API token (no session, no CSRF token)."""
from __future__ import annotations

import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from requests.exceptions import HTTPError

from tests.api.conftest import bearer
from tests.browser.conftest import live_server  # noqa: F401  (the same live server the browser tests use)
from tests.imaging_helpers import synth_series


def test_stow_rs_and_qido_rs_with_a_token(live_server, make_case, make_token, tmp_path):  # noqa: F811
    case_id = make_case("assigned").id
    pushed = [dcmread(p) for p in synth_series(tmp_path / "stow", 3)]
    url = f"{live_server}/dicomweb/cases/{case_id}"

    reader = DICOMwebClient(url=url, headers=bearer(make_token("referring", "read")))
    with pytest.raises(HTTPError) as refused:
        reader.store_instances(pushed)
    assert refused.value.response.status_code == 403  # read scope: QIDO/WADO only
    assert reader.search_for_studies() == []

    writer = DICOMwebClient(url=url, headers=bearer(make_token("referring", "write")))
    result = writer.store_instances(pushed)
    assert sorted(i.ReferencedSOPInstanceUID for i in result.ReferencedSOPSequence) == \
        sorted(d.SOPInstanceUID for d in pushed)
    [study] = reader.search_for_studies()
    assert study["0020000D"]["Value"] == [pushed[0].StudyInstanceUID]
    got = reader.retrieve_instance(pushed[0].StudyInstanceUID, pushed[0].SeriesInstanceUID, pushed[0].SOPInstanceUID)
    assert got.PixelData == pushed[0].PixelData

    # A token acts as its owner: another referrer's token finds no such case; a bad token is refused outright.
    for headers, status in ((bearer(make_token("other_referring", "write")), 404), (bearer("sop_nope"), 401)):
        stranger = DICOMwebClient(url=url, headers=headers)
        with pytest.raises(HTTPError) as denied:
            stranger.store_instances(pushed)
        assert denied.value.response.status_code == status
