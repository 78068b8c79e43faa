"""Is this the same patient? The banner on the upload result, the case page and the viewer; the decision through
the route (both ways, by whom, with a reason); the purge; the administrators' page; and signing refused until then."""
from __future__ import annotations

import io
import re

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from pypdf import PdfReader
from sqlalchemy import select

from review_portal.audit.models import AuditEvent
from review_portal.imaging.identity_services import mismatches_of_case, open_mismatches
from review_portal.imaging.models import Instance, Series, Study
from review_portal.letters.services import letters_for_case
from review_portal.notifications.models import Notification
from tests.conftest import PASSWORD, testdata
from tests.web.test_opinion_and_letter_routes import csrf_app as csrf_app_fixture

DRAFT = {"diagnosis_concordance": "confirmed", "plan_concordance": "agree", "reviewer_diagnosis": "IDC grade 2.",
         "recommended_plan": "Surgery first.", "rationale": "Concordant imaging and pathology.", "urgency": "routine"}
FETCH = {"X-Requested-With": "fetch", "Accept": "application/json"}


def other_patient_ct(**values) -> bytes:
    """pydicom's CT_small as another patient's study (a new study UID, so it is its own study in the case)."""
    ds = dcmread(testdata("CT_small.dcm"))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "ROE^RICHARD", "H-99", "19991231", "M"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyDescription = "CT of someone else"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.PixelData = ds.pixel_array[::-1].tobytes()  # its own pixels: nothing shared with another study
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def upload(client, case_id: int, content: bytes):
    return client.post(f"/cases/{case_id}/scans", data={"scans": [(io.BytesIO(content), "IM0001.dcm")]},
                       content_type="multipart/form-data")


@pytest.fixture
def flagged(db, make_case, login_as):
    """A case in review to which the referrer sent another patient's CT: (case, referrer client, ingest page)."""
    case = make_case("in_review")
    referrer = login_as("referring")
    sent = upload(referrer, case.id, other_patient_ct())
    assert sent.status_code == 302 and "/ingests/" in sent.headers["Location"]
    return case, referrer, sent.headers["Location"]


def banner_of(html: str) -> str:
    found = re.search(r'<section class="panel identity-warning".*?</section>', html, re.DOTALL)
    assert found, "no identity banner on the page"
    return found.group(0)


def test_the_banner_names_each_field_and_both_values_on_the_upload_result_case_page_and_viewer(flagged, login_as):
    case, referrer, ingest_page = flagged
    for client, url in ((referrer, ingest_page), (referrer, f"/cases/{case.id}"),
                        (login_as("reviewer"), f"/cases/{case.id}/viewer"), (login_as("reviewer"), f"/cases/{case.id}")):
        page = client.get(url)
        assert page.status_code == 200, url
        banner = banner_of(page.get_data(as_text=True))
        for label, referral_value, file_value in (("Patient name", "Test Patient", "ROE, RICHARD"),
                                                  ("Patient ID / MRN", "MRN-1", "H-99"),
                                                  ("Birth date", "1960-01-02", "1999-12-31"), ("Sex", "female", "male")):
            assert (f"<strong>{label}</strong> differs: referral <q>{referral_value}</q>, file <q>{file_value}</q>"
                    in banner), (url, label)
        # Only the referrer (or a coordinator) gets the decision form; the reviewer is told who decides.
        assert ('name="decision"' in banner) == (client is referrer), url


def test_the_upload_progress_counts_the_studies_in_question(flagged, make_case, login_as):
    _, referrer, ingest_page = flagged
    assert referrer.get(ingest_page + "?format=json").json["identity_questions"] == 1
    clean = make_case("in_review", scans=["CT_small.dcm"])  # confirmed by the fixture
    job = referrer.get(f"/cases/{clean.id}/scans").get_data(as_text=True)
    ingest_id = re.search(rf"/cases/{clean.id}/ingests/(\d+)", job).group(1)
    assert referrer.get(f"/cases/{clean.id}/ingests/{ingest_id}?format=json").json["identity_questions"] == 0


def test_the_opinion_page_viewer_shows_the_banner_to_the_reviewer(flagged, login_as):
    case, _, _ = flagged
    page = login_as("reviewer").get(f"/cases/{case.id}/opinion")
    assert page.status_code == 200
    assert "ROE, RICHARD" in banner_of(page.get_data(as_text=True))


def test_no_banner_without_a_mismatch(make_case, login_as):
    case = make_case("in_review", scans=["CT_small.dcm"])  # confirmed by the fixture
    assert "identity-warning" not in login_as("referring").get(f"/cases/{case.id}").get_data(as_text=True)


def test_signing_is_refused_with_409_until_the_referrer_confirms_the_same_patient(db, storage, flagged, login_as):
    case, referrer, _ = flagged
    reviewer = login_as("reviewer")
    assert reviewer.post(f"/cases/{case.id}/opinion/autosave", data=DRAFT | {"version": "0"}, headers=FETCH).status_code == 200
    refused = reviewer.post(f"/cases/{case.id}/opinion/sign", data={"attest": "y", "password": PASSWORD})
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert "patient identity is unresolved" in text and "ROE, RICHARD" in text
    assert letters_for_case(db, case.id) == []
    study_id = open_mismatches(db, case.id)[0].study_id

    # The reviewer cannot decide; a stranger does not see the case; a decision needs a reason.
    assert reviewer.post(f"/cases/{case.id}/studies/{study_id}/identity",
                         data={"decision": "same_patient", "reason": "x"}).status_code == 403
    assert login_as("other_referring").post(f"/cases/{case.id}/studies/{study_id}/identity",
                                            data={"decision": "same_patient", "reason": "x"}).status_code == 404
    no_reason = referrer.post(f"/cases/{case.id}/studies/{study_id}/identity", data={"decision": "same_patient", "reason": ""})
    assert no_reason.status_code == 400 and "reason" in no_reason.get_data(as_text=True)
    assert referrer.post(f"/cases/{case.id}/studies/{study_id}/identity",
                         data={"decision": "maybe", "reason": "x"}).status_code == 400
    db.expire_all()
    assert len(open_mismatches(db, case.id)) == 4

    done = referrer.post(f"/cases/{case.id}/studies/{study_id}/identity",
                         data={"decision": "same_patient", "reason": "Outside MRN (St Elsewhere)"})
    assert done.status_code == 302
    again = referrer.post(f"/cases/{case.id}/studies/{study_id}/identity",
                          data={"decision": "wrong_study", "reason": "changed my mind"})
    assert again.status_code == 409
    db.expire_all()
    assert {m.status for m in mismatches_of_case(db, case.id)} == {"same_patient"}
    assert "identity-warning" not in referrer.get(f"/cases/{case.id}").get_data(as_text=True)

    signed = reviewer.post(f"/cases/{case.id}/opinion/sign", data={"attest": "y", "password": PASSWORD})
    assert signed.status_code == 302
    [letter] = letters_for_case(db, case.id)
    pdf = PdfReader(io.BytesIO(storage.read_verified(letter.blob_key)))
    text = " ".join(" ".join(p.extract_text().split()) for p in pdf.pages)
    assert "Patient in the file: ROE, RICHARD, ID H-99, born 1999-12-31, sex male" in text
    assert "Confirmed same patient: Outside MRN (St Elsewhere)" in text


def test_wrong_study_through_the_page_purges_it_and_tells_the_administrators(db, storage, flagged, login_as, users):
    case, _, _ = flagged
    study = db.scalar(select(Study).where(Study.case_id == case.id))
    series = db.scalar(select(Series).where(Series.study_id == study.id))
    keys = {series.thumbnail_key, *db.scalars(select(Instance.blob_key).where(Instance.series_id == series.id))}
    assert all(storage.exists(k) for k in keys)
    reviewer = login_as("reviewer")
    assert reviewer.get(f"/cases/{case.id}/series/{series.id}/thumbnail.png").status_code == 200  # the images were seen
    study_id, series_id = study.id, series.id

    coordinator = login_as("coordinator")
    removed = coordinator.post(f"/cases/{case.id}/studies/{study_id}/identity",
                               data={"decision": "wrong_study", "reason": "Another patient's CT"})
    assert removed.status_code == 302
    db.expire_all()
    assert db.get(Study, study_id) is None and [k for k in keys if storage.exists(k)] == []
    assert reviewer.get(f"/cases/{case.id}/series/{series_id}/thumbnail.png").status_code == 404
    [note] = db.scalars(select(Notification).where(Notification.kind == "privacy_incident")).all()
    assert note.user_id == users["admin"].id

    # The administrators' page: the incident and who saw the images (the reviewer's thumbnail read).
    assert coordinator.get(note.link).status_code == 403
    admin = login_as("admin")
    page = admin.get(note.link)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Another patient&#39;s CT" in html or "Another patient's CT" in html
    rows = re.findall(r"<tr><td>.*?</tr>", re.search(r'<table class="table" id="identity-views">.*?</table>', html, re.DOTALL).group(0))
    assert len(rows) == 1 and users["reviewer"].email in rows[0] and f"series {series_id}" in rows[0]
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "identity.incident_viewed")) is not None
    assert admin.get(f"/cases/{case.id}/identity/999999/views").status_code == 404


def test_end_to_end_a_referral_with_two_studies_one_of_another_patient(db, storage, app, users, login_as):
    """The referral form takes this patient's CT and another patient's; the referrer is warned at once, the
    reviewer cannot sign, a coordinator removes the wrong study, the reviewer signs, and the letter the referrer
    downloads lists only this patient's study, with its identity checked."""
    from tests.web.test_referrals import form, with_files

    ds = dcmread(testdata("CT_small.dcm"))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "ROE^JANE", "H-4711", "19700506", "F"
    ds.StudyDescription = "CT chest of this patient"
    mine = io.BytesIO()
    ds.save_as(mine)
    referrer = login_as("referring")
    sent = referrer.post("/referrals/new", data=with_files(form(discipline="medical_oncology", cancer_site="breast"), scans=[
        ("mine.dcm", mine.getvalue()), ("theirs.dcm", other_patient_ct(PatientSex="F"))]), content_type="multipart/form-data")
    assert sent.status_code == 302
    case_url = sent.headers["Location"]
    case_id = int(re.search(r"/cases/(\d+)", case_url).group(1))
    banner = banner_of(referrer.get(f"/cases/{case_id}").get_data(as_text=True))
    assert "CT of someone else" in banner and "CT chest of this patient" not in banner
    assert "<q>Jane Roe</q>, file <q>ROE, RICHARD</q>" in banner and "<strong>Sex</strong>" not in banner

    from review_portal.cases.models import Case

    case = db.get(Case, case_id)
    reviewer = login_as("reviewer")
    assert case.reviewer.id == users["reviewer"].id
    assert reviewer.post(f"/cases/{case_id}/assignments/{case.active_assignment.id}/accept").status_code == 302
    assert reviewer.post(f"/cases/{case_id}/opinion/autosave", data=DRAFT | {"version": "0"}, headers=FETCH).status_code == 200
    assert reviewer.post(f"/cases/{case_id}/opinion/sign", data={"attest": "y", "password": PASSWORD}).status_code == 409

    wrong = open_mismatches(db, case_id)[0].study_id
    assert login_as("coordinator").post(f"/cases/{case_id}/studies/{wrong}/identity", data={
        "decision": "wrong_study", "reason": "Sent with the wrong patient's referral"}).status_code == 302
    assert reviewer.post(f"/cases/{case_id}/opinion/sign", data={"attest": "y", "password": PASSWORD}).status_code == 302
    db.expire_all()
    [letter] = letters_for_case(db, case_id)
    pdf = referrer.get(f"/cases/{case_id}/letters/{letter.id}.pdf")
    assert pdf.status_code == 200
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "CT chest of this patient. Patient in the file: ROE, JANE, ID H-4711, born 1970-05-06, sex female." in text
    assert "Identity checked against the referral" in text
    assert "someone else" not in text and "RICHARD" not in text


csrf_app = csrf_app_fixture  # the app with CSRF switched on


def test_the_decision_needs_the_forms_csrf_token(csrf_app, tmp_path):
    from review_portal.auth.models import Role
    from review_portal.auth.services import create_user
    from review_portal.cases.disciplines import seed_disciplines
    from review_portal.db import session
    from review_portal.uploads import UploadedFile
    from review_portal.workflow.referrals import submit_referral
    from tests.conftest import NOW, TURNAROUND, referral

    db = session()
    seed_disciplines(db)
    referrer = create_user(db, email="ref@x.example", name="Ref", password=PASSWORD, role=Role.REFERRING, now=NOW,
                           institution=None)
    scan = tmp_path / "theirs.dcm"
    scan.write_bytes(other_patient_ct())
    case, _ = submit_referral(db, csrf_app.extensions["storage"], referral(), documents=[],
                              scans=[UploadedFile("theirs.dcm", scan)], by=referrer, ip="127.0.0.1", now=NOW,
                              turnaround_days=TURNAROUND)
    db.commit()
    study_id, case_id = open_mismatches(db, case.id)[0].study_id, case.id
    client = csrf_app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"email": "ref@x.example", "password": PASSWORD, "csrf_token": token}).status_code == 302
    banner = banner_of(client.get(f"/cases/{case_id}").get_data(as_text=True))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', banner).group(1)
    decision = {"decision": "same_patient", "reason": "Outside MRN"}
    assert client.post(f"/cases/{case_id}/studies/{study_id}/identity", data=decision).status_code == 400
    db.expire_all()
    assert len(open_mismatches(db, case_id)) == 4
    assert client.post(f"/cases/{case_id}/studies/{study_id}/identity",
                       data=decision | {"csrf_token": token}).status_code == 302
    db.expire_all()
    assert open_mismatches(db, case_id) == []
