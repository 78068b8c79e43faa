"""A file whose frame count the data does not back costs no more than a normal one at upload, on the case page,
in the series JSON, in DICOMweb (QIDO) and in the rendered-frame range; a count tampered in the database is clamped."""
from __future__ import annotations

from sqlalchemy import update

from review_portal.imaging import services
from review_portal.imaging.limits import DEFAULT
from review_portal.imaging.models import Instance
from tests.hostile_dicom import encapsulated_declaring_frames
from tests.imaging_helpers import synth_series


def test_upload_refuses_the_unbacked_file_and_keeps_the_rest(app, db, make_case, login_as, tmp_path):
    case = make_case("in_review")
    paths = synth_series(tmp_path / "s", 2) + [encapsulated_declaring_frames(tmp_path / "million.dcm", 10**6)]
    r = login_as("referring").post(f"/cases/{case.id}/scans", data={"scans": [(open(p, "rb"), p.name) for p in paths]},
                                   headers={"X-Requested-With": "fetch"})
    assert r.status_code == 200
    assert r.json["ingest"]["accepted"] == 2
    assert r.json["ingest"]["rejected"] == [{"name": "million.dcm", "reason": (
        f"the header declares 1000000 frames; the portal accepts at most {DEFAULT.max_frames} per file")}]


def test_a_tampered_frame_count_is_clamped_in_series_json_qido_and_frame_range(app, db, make_case, login_as, tmp_path):
    case = make_case("in_review")
    paths = synth_series(tmp_path / "s", 2)
    r = login_as("referring").post(f"/cases/{case.id}/scans", data={"scans": [(open(p, "rb"), p.name) for p in paths]},
                                   headers={"X-Requested-With": "fetch"})
    assert r.json["ingest"]["accepted"] == 2
    [series] = services.series_of_case(db, case.id)
    tampered = series.instances[0]
    db.execute(update(Instance).where(Instance.id == tampered.id).values(frames=10**6))
    db.commit()
    reviewer = login_as("reviewer")

    assert reviewer.get(f"/cases/{case.id}").status_code == 200
    body = reviewer.get(f"/cases/{case.id}/series/{series.id}.json").json
    assert body["count"] == DEFAULT.max_frames + 1

    rows = reviewer.get(f"/dicomweb/cases/{case.id}/instances").json
    assert sorted(int(row["00280008"]["Value"][0]) for row in rows) == [1, DEFAULT.max_frames]

    study_uid = series.study.study_instance_uid
    frame_url = (f"/dicomweb/cases/{case.id}/studies/{study_uid}/series/{series.series_instance_uid}"
                 f"/instances/{tampered.sop_instance_uid}/frames/%d/rendered")
    assert reviewer.get(frame_url % (DEFAULT.max_frames + 1)).status_code == 404
