"""At signing the lead review's measurements are recomputed from the original pixels, printed in the letter as a
table of lesions (read back with pypdf), and drawn into the key images of the slices they were made on."""
import io
from datetime import timedelta

import numpy as np
from PIL import Image
from pypdf import PdfReader

from review_portal.imaging import services as imaging
from review_portal.imaging.models import KeyImage
from review_portal.letters.services import letters_for_case
from review_portal.opinions import measurements as service
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.signing import sign_and_issue_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD
from tests.phantom import DISC, SQUARE
from tests.services.test_measurements import phantom_case


def _pdf_text(storage, letter) -> str:
    reader = PdfReader(io.BytesIO(storage.read_bytes(letter.blob_key)))
    return " ".join(" ".join(p.extract_text() for p in reader.pages).split())


def test_the_letter_prints_the_recomputed_measurements_and_burns_them_into_the_key_image(db, storage, make_case,
                                                                                        users, tmp_path):
    case, instance = phantom_case(db, storage, make_case, users, tmp_path)
    reviewer = case.reviewer
    ctx = {"by": reviewer, "ip": ""}
    s, r = SQUARE, DISC["radius"] - 1
    made = [
        ("length", [[s["x0"], s["y0"]], [s["x0"] + s["side"], s["y0"]]], "Target lesion 1"),
        ("bidirectional", [[s["x0"], s["y0"]], [s["x0"] + s["side"], s["y0"] + s["side"]],
                           [s["x0"] + s["side"] - 4, s["y0"] + 2], [s["x0"] + 2, s["y0"] + s["side"] - 2]], "Node A"),
        ("ellipse", [[DISC["cx"] - r, DISC["cy"] - r], [DISC["cx"] + r, DISC["cy"] + r]], "Liver ROI"),
        ("probe", [[DISC["cx"], DISC["cy"]]], "Cyst density"),
        ("arrow", [[5, 5], [30, 30]], "Look here"),
    ]
    for n, (kind, points, label) in enumerate(made):
        m = service.create_measurement(db, storage, case, sop_instance_uid=instance.sop_instance_uid, frame=0, kind=kind,
                                       points=points, label=label, now=NOW + timedelta(minutes=20 + n), **ctx)
        m.values = {**m.values, "length": 1.0, "long": 1.0, "mean": 1.0, "value": 1.0}  # not what the letter prints
    series = imaging.series_of_case(db, case.id)[0]
    key_image = imaging.mark_key_image(db, storage, case, series, slice_index=0, center=40, width=400,
                                       caption="Lesions measured", now=NOW + timedelta(minutes=40), **ctx)
    plain_png = storage.read_bytes(key_image.png_key)
    save_draft(db, case, OpinionDraft("refined", "modify", "Stage IB.", "Lobectomy.", "Second focus."),
               based_on_version=None, now=NOW + timedelta(hours=1), **ctx)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                          now=NOW + timedelta(hours=2), **ctx)

    text = _pdf_text(storage, letters_for_case(db, case.id)[0])
    assert "MEASUREMENTS LESION IMAGE KIND VALUE" in text  # the heading and the table's head (set in capitals)
    assert "Target lesion 1" in text and "21.0 mm" in text
    assert "Node A" in text and "29.7 × 24.7 mm" in text
    assert "Liver ROI" in text and "area 555.7 mm², mean 40.0 HU (SD 0.0, min 40.0, max 40.0)" in text
    assert "Cyst density" in text and "40.0 HU" in text
    assert "CT Phantom, series 1, image 1" in text
    assert "Look here" not in text.split("MEASUREMENTS", 1)[1].split("KEY IMAGES", 1)[0]  # an arrow has no row

    burned = db.get(KeyImage, key_image.id)
    assert burned.png_key != key_image.png_key or storage.read_bytes(burned.png_key) != plain_png
    pixels = np.asarray(Image.open(io.BytesIO(storage.read_bytes(burned.png_key))).convert("RGB")).astype(int)
    yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 180) & (pixels[..., 2] < 80)
    assert yellow[s["y0"], s["x0"] + 5:s["x0"] + s["side"] - 5].all()  # the length drawn along the square's top edge
    assert not yellow[s["y0"] + 18, s["x0"] + 25]  # away from the lines, the square stays the image
    plain = np.asarray(Image.open(io.BytesIO(plain_png)).convert("RGB"))
    assert not ((plain[..., 0] > 200) & (plain[..., 1] > 180) & (plain[..., 2] < 80)).any()
