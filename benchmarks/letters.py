"""Letter render time and size for a realistic letter with four key images.

    /work/main/.venv/bin/python benchmarks/letters.py [--runs 7] [--out letter.pdf]

Prints the first render (cold: fonts, templates and images loaded for the first time), the median
of the warm renders that follow, the PDF size and its page count. The key images are real CT
pixels (pydicom sample data, 512² when pydicom-data is installed, else 128²) rendered at four
window/level presets through the viewer's own renderer and kept in a throwaway blob store, so the
renderer fetches them through the same keyimage: path as in production.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom.data import get_testdata_file  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from review_portal.imaging.rendering import render_frame  # noqa: E402
from review_portal.letters.render import render_letter_pdf  # noqa: E402
from review_portal.storage import LocalStorage  # noqa: E402

PRESETS = [("Soft tissue", 40, 400), ("Lung", -600, 1500), ("Bone", 400, 1800), ("Liver", 60, 160)]


def sample_ct() -> Path:
    for name in ("693_UNCR.dcm", "CT_small.dcm"):
        path = get_testdata_file(name, download=False)
        if path:
            return Path(path)
    raise SystemExit("no CT sample file found")


def key_images(storage: LocalStorage) -> list[dict]:
    ct = sample_ct()
    images = []
    for n, (label, center, width) in enumerate(PRESETS, start=1):
        png = render_frame(ct, 0, center=center, width=width, fmt="png")
        key, _ = storage.put_bytes(png)
        images.append({"caption": f"Axial CT, {label.lower()} window: finding {n}",
                       "series_label": "CT chest with contrast, series 3", "slice_label": f"Slice {40 + n} of 120",
                       "window_label": f"{label} (W {width} / L {center})", "png_key": key})
    return images


def context(images: list[dict]) -> dict:
    paragraph = ("The 23 mm spiculated mass in the right upper lobe abuts but does not invade the visceral pleura. "
                 "There is a second 6 mm ground-glass focus in the same lobe, which changes the T category. ")
    return {
        "institution": {"name": "Northbridge Cancer Centre",
                        "address_lines": ["Second Opinion Service", "1 Harbour Road", "Northbridge NB1 2CC"],
                        "phone": "+44 20 0000 0000", "logo": "img/letterhead-logo.svg"},
        "letter_date": "26 November 2026", "case_reference": "SO-2026-00042", "review_type": "oncology_opinion",
        "version": 2, "change_summary": "Addendum 1 of 27 November 2026: EGFR result received.",
        "previous_versions": [{"version": 1, "issued": "26 November 2026", "verification_code": "AB12-CD34-EF56-GH78"}],
        "recipient": {"name": "Dr Jane Roe, MD", "institution": "Riverside General Hospital",
                      "address_lines": ["Department of Oncology", "14 Market Street", "Riverside RV2 9QT"]},
        "patient": {"name": "Wilma Example", "date_of_birth": "1959-05-06", "sex": "Female", "mrn": "RGH-0042"},
        "review_type_label": "Oncology opinion", "cancer_site_label": "Thoracic",
        "question": "Is lobectomy alone adequate?\nWould you recommend adjuvant therapy?",
        "diagnosis_in_question": "Adenocarcinoma of the right upper lobe, stage IA2.",
        "plan_in_question": "Lobectomy, no adjuvant therapy.",
        "records_reviewed": [
            {"kind": "History", "description": "Imaging: CT chest, 14 mm nodule", "date": "2026-10-01"},
            {"kind": "History", "description": "Pathology: CT-guided biopsy, adenocarcinoma", "date": "2026-10-09"},
            {"kind": "Report", "description": "Pathology report.pdf", "date": "2026-10-20"},
            {"kind": "Imaging", "description": "CT – CT chest with contrast – Axial 1 mm (120 image file(s))", "date": "2026-10-01"},
        ],
        "opinion": {
            "diagnosis_concordance_label": "Diagnosis refined", "plan_concordance_label": "Modify plan",
            "reviewer_diagnosis": "Invasive adenocarcinoma, acinar predominant, with a second ground-glass focus.",
            "rationale": paragraph * 3, "stage_text": "Stage IB (AJCC 8th edition)", "tnm": "cT2a cN0 cM0",
            "recommended_plan": "Lobectomy with systematic nodal dissection.\nAdjuvant osimertinib if EGFR mutated.",
            "further_tests": "EGFR mutation testing and PD-L1 on the resection specimen.",
            "trial_consideration_label": "Consider a clinical trial", "clinical_trials": "Adjuvant ctDNA-guided trials.",
            "urgency_label": "Prompt: act within two weeks", "urgency": "prompt",
        },
        "key_images": images,
        "addenda": [{"number": 1, "reason": "EGFR result received", "signed_by": "Dr Ada Stone, MD",
                     "text": "EGFR exon 19 deletion detected. Adjuvant osimertinib is recommended after lobectomy.",
                     "signed_at": "27 November 2026, 10:12 UTC", "sha256": "9" * 64}],
        "reviewer": {"name": "Dr Ada Stone", "credentials": "MD, PhD", "specialty_label": "Medical oncology",
                     "institution": "Northbridge Cancer Centre"},
        "signed_at": "26 November 2026, 14:03 UTC", "content_sha256": "4" * 64,
        "verification_code": "7KQ2-M9XD-4HTA-P3RV", "verification_url": "https://portal.example/verify",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="warm renders after the first")
    parser.add_argument("--out", type=Path, help="also write the PDF here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(Path(tmp))
        ctx = context(key_images(storage))
        start = time.perf_counter()
        pdf = render_letter_pdf(ctx, storage=storage)
        first = time.perf_counter() - start
        warm = []
        for _ in range(args.runs):
            start = time.perf_counter()
            pdf = render_letter_pdf(ctx, storage=storage)
            warm.append(time.perf_counter() - start)
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    print(f"letter with {len(ctx['key_images'])} key images, {pages} pages, CT sample {sample_ct().name}")
    print(f"first render   {first:.3f} s")
    print(f"warm median    {statistics.median(warm):.3f} s  (min {min(warm):.3f}, max {max(warm):.3f}, n={len(warm)})")
    print(f"size           {len(pdf) / 1024:.0f} KiB")
    if args.out:
        args.out.write_bytes(pdf)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
