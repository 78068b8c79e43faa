"""Key images marked in the viewer reach the signed letter without the caller passing them."""
import io
from datetime import timedelta

from pypdf import PdfReader

from review_portal.imaging.services import mark_key_image, series_of_case
from review_portal.letters.services import letters_for_case
from review_portal.opinions.services import OpinionDraft, save_draft
from review_portal.workflow.signing import sign_and_issue_letter
from tests.conftest import INSTITUTION, NOW, PASSWORD


def test_marked_key_image_is_embedded_in_the_letter(db, storage, make_case):
    case = make_case("in_review", scans=["CT_small.dcm"])
    reviewer = case.reviewer
    series = series_of_case(db, case.id)[0]
    ctx = {"by": reviewer, "ip": "127.0.0.1"}
    mark_key_image(db, storage, case, series, slice_index=0, center=40, width=400,
                   caption="Spiculated nodule, right upper lobe", now=NOW + timedelta(minutes=40), **ctx)
    save_draft(db, case, OpinionDraft("refined", "modify", "Stage IB.", "Lobectomy.", "Second focus."),
               based_on_version=None, now=NOW + timedelta(hours=1), **ctx)
    sign_and_issue_letter(db, storage, case, password=PASSWORD, attested=True, institution=INSTITUTION,
                          now=NOW + timedelta(hours=2), **ctx)
    letter = letters_for_case(db, case.id)[0]
    reader = PdfReader(io.BytesIO(storage.read_bytes(letter.blob_key)))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert "Spiculated nodule, right upper lobe" in text
    assert "40" in text and "400" in text  # window/level printed with the image
    images = [img for page in reader.pages for img in page.images]
    assert images, "the key image is embedded as an image in the PDF"
