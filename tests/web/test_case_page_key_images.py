"""The referrer sees the key images and their captions on the case page once the letter is delivered, not before;
the image route refuses anyone else with a 404 and audits every look."""
from __future__ import annotations

import io
from datetime import timedelta

from PIL import Image
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case
from review_portal.imaging.models import KeyImage
from review_portal.imaging.services import mark_key_image, series_of_case
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.signing import sign_and_issue_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD

CAPTION = "Spiculated nodule, right upper lobe"


def _case_with_key_image(db, storage, make_case):
    case = make_case("in_review", scans=["CT_small.dcm"])
    series = series_of_case(db, case.id)[0]
    key = mark_key_image(db, storage, case, series, slice_index=0, center=40, width=400, caption=CAPTION,
                         by=case.reviewer, ip="127.0.0.1", now=NOW + timedelta(minutes=40))
    db.commit()
    return case, key.id


def _deliver(db, storage, case_id):
    db.expire_all()
    case = db.get(Case, case_id)
    ctx = {"by": case.reviewer, "ip": "127.0.0.1"}
    save_draft(db, case, OpinionDraft("refined", "modify", "Stage IB.", "Lobectomy.", "Second focus."),
               based_on_version=None, now=NOW + timedelta(hours=1), **ctx)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                          now=NOW + timedelta(hours=2), **ctx)
    db.commit()
    db.expire_all()
    assert db.get(Case, case_id).status == "letter_delivered"


def _image_views(db, case_id, user_id):
    return list(db.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.actor_id == user_id,
                                                     AuditEvent.action == "images.viewed")))


def test_referrer_sees_key_images_with_captions_only_after_the_letter(db, storage, make_case, login_as, users):
    ids = {key: user.id for key, user in users.items()}
    case, key_id = _case_with_key_image(db, storage, make_case)
    png_url = f"/cases/{case.id}/key-images/{key_id}.png"
    referrer = login_as("referring")

    before = referrer.get(f"/cases/{case.id}").get_data(as_text=True)
    assert CAPTION not in before and png_url not in before and 'id="key-images"' not in before
    assert referrer.get(png_url).status_code == 404
    assert _image_views(db, case.id, ids["referring"]) == []
    # Staff and the reviewer see them as before (in the viewer, which loads this PNG).
    assert login_as("reviewer").get(png_url).status_code == 200
    assert login_as("coordinator").get(png_url).status_code == 200

    _deliver(db, storage, case.id)
    after = referrer.get(f"/cases/{case.id}").get_data(as_text=True)
    section = after.split('id="key-images"', 1)[1].split("</section>", 1)[0]
    assert CAPTION in section and f'src="{png_url}"' in section and "W 400 / L 40" in section
    assert CAPTION in login_as("reviewer").get(f"/cases/{case.id}").get_data(as_text=True)
    response = referrer.get(png_url)
    assert response.status_code == 200 and Image.open(io.BytesIO(response.data)).format == "PNG"
    [event] = _image_views(db, case.id, ids["referring"])
    assert event.object_type == "series" and f"key image {key_id}" in event.detail


def test_key_image_route_refuses_strangers_and_audits(db, storage, make_case, login_as, users):
    ids = {key: user.id for key, user in users.items()}
    clients = {key: login_as(key) for key in ("referring", "other_referring", "other_reviewer")}
    case, key_id = _case_with_key_image(db, storage, make_case)
    _deliver(db, storage, case.id)
    png_url = f"/cases/{case.id}/key-images/{key_id}.png"
    for stranger in ("other_referring", "other_reviewer"):
        assert clients[stranger].get(png_url).status_code == 404
        assert _image_views(db, case.id, ids[stranger]) == []
        assert CAPTION not in clients[stranger].get(f"/cases/{case.id}").get_data(as_text=True)
    assert clients["referring"].get(png_url).status_code == 200
    assert len(_image_views(db, case.id, ids["referring"])) == 1
    # A key image of another case is not reachable through this case's address.
    other_case, other_key = _case_with_key_image(db, storage, make_case)
    assert clients["referring"].get(f"/cases/{case.id}/key-images/{other_key}.png").status_code == 404
    assert db.get(KeyImage, other_key).case_id == other_case.id
