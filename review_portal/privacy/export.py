"""A de-identified copy of a case for teaching or research: DICOM through the PS3.15 basic profile,
a case summary without identifiers, documents only when explicitly chosen (they are not de-identified)."""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.errors import StoredFileCorrupt
from review_portal.imaging.delivery import part10_chunks
from review_portal.imaging.services import series_of_case
from review_portal.privacy.deid import Deidentifier, age_band
from review_portal.storage import Storage


_CHUNK = 1024 * 1024


@dataclass
class ExportReport:
    instances: int = 0
    left_out: list[str] = field(default_factory=list)
    documents: int = 0


def export_case(db: Session, storage: Storage, case, dest: Path, *, include_documents: bool, by, ip: str,
                now: datetime, deid: Deidentifier | None = None) -> ExportReport:
    deid = deid or Deidentifier(pseudonym=f"DEID-{case.id:05d}-{now:%Y%m%d}")
    report = ExportReport()
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for s_index, series in enumerate(series_of_case(db, case.id), start=1):
            for i_index, inst in enumerate(sorted(series.instances, key=lambda x: (x.instance_number or 0, x.id)), start=1):
                try:
                    ds = dcmread(storage.verified_local_path(inst.blob_key))
                except StoredFileCorrupt:  # logged at ERROR by storage
                    report.left_out.append(f"series {s_index} image {i_index}: the stored file failed its integrity check")
                    continue
                except (InvalidDicomError, OSError) as exc:  # stored files were validated at intake; be safe anyway
                    report.left_out.append(f"series {s_index} image {i_index}: unreadable ({type(exc).__name__})")
                    continue
                if deid.burned_in(ds):
                    report.left_out.append(f"series {s_index} image {i_index}: text burned into the pixels")
                    continue
                deid.apply(ds)
                out = dest.parent / f"{dest.stem}-{s_index}-{i_index}.dcm"
                ds.save_as(out, enforce_file_format=True)
                # The one way a DICOM file leaves the portal (imaging.delivery): zero preamble, the rest as written.
                with open(out, "rb") as fh, zf.open(f"DICOM/series-{s_index:03d}/image-{i_index:04d}.dcm", "w") as member:
                    for chunk in part10_chunks(iter(lambda: fh.read(_CHUNK), b"")):
                        member.write(chunk)
                out.unlink()
                report.instances += 1
        if include_documents:
            for n, doc in enumerate(case.documents, start=1):
                try:
                    path = storage.verified_local_path(doc.sha256)
                except StoredFileCorrupt:
                    report.left_out.append(f"document {n}: the stored file failed its integrity check")
                    continue
                zf.write(path, f"documents/document-{n}{Path(doc.filename).suffix}")
                report.documents += 1
        summary = {
            "pseudonym": deid.pseudonym,
            "review_type": case.review_type,
            "cancer_site": case.cancer_site,
            "patient_sex": case.patient_sex,
            "patient_age_at_referral": age_band(case.patient_dob, case.submitted_at),
            "dates_shifted": "all DICOM dates are shifted by one undisclosed number of days",
            "deidentification": "DICOM PS3.15 E.1 basic profile, modified dates option",
            "images": report.instances,
            "left_out": report.left_out,
            "documents_included": report.documents,
            "documents_warning": "Documents are copied unchanged and may identify the patient." if report.documents else "",
        }
        zf.writestr("case.json", json.dumps(summary, indent=2))
    record(db, action="case.deidentified_export", by=by, ip=ip, now=now, case=case, object_type="case",
           object_id=case.id, detail=f"images={report.instances}; left out={len(report.left_out)}; documents={report.documents}")
    return report
