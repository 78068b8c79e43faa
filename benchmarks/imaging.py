"""Imaging speed against a reference: ingest, render over HTTP, per-request overhead, RSS during a 1 GB upload.

    /work/main/.venv/bin/python benchmarks/imaging.py [--slices 200] [--render-frames 50] [--big-mb 1024] [--no-orthanc]

Synthesizes a 512 x 512 CT series from pydicom-data's 693_UNCR.dcm (one study/series/frame of
reference, new SOP Instance UIDs, InstanceNumber, ImagePositionPatient z, pixels varied slice to
slice) in three variants: uncompressed, JPEG lossless (SV1, encoded with GDCM) and JPEG 2000
lossless (pylibjpeg-openjpeg). The portal runs as a separate process (werkzeug, threaded, HTTP/1.1
keep-alive, SQLite, the production decode sandbox) so its resident memory can be sampled while a
client streams ~1 GB to it. Orthanc (Debian's `orthanc` + `orthanc-gdcm`, benchmarks/orthanc.py) runs
beside it on loopback when installed; otherwise the comparison is skipped with a note.

* Ingest, ours: one multipart upload; the clock stops when the series JSON lists every instance and the
  last slice renders (viewable); the last thumbnail is timed separately. Orthanc: one keep-alive
  POST /instances per file.
* Render over HTTP with window 40/400, PNG then JPEG: cold = the first request for each frame in that
  format, warm = a second pass. Orthanc: GET /instances/{id}/rendered with the same window.
* Per-request overhead: the HTTP cold PNG median minus the in-process render of the same frames.

Prints markdown tables; asserts nothing. Machine load matters: on the shared 2-core box the same code
measured 165-324 instances/s within minutes, so prefer the ratios, which come from one run.
"""
from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "scroll-window-level-7"  # the policy refuses passwords containing the e-mail ("bench")


# ------------------------------------------------------------------ synthesis


def synthesize(dest: Path, count: int, variant: str) -> list[Path]:
    import numpy as np
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import JPEG2000Lossless, generate_uid

    source = get_testdata_file("693_UNCR.dcm", download=False)
    if source is None:
        raise SystemExit("pydicom-data is needed: pip install pydicom-data==1.0.0")
    base = dcmread(source)
    dtype = base.pixel_array.dtype
    pixels = base.pixel_array.astype(np.int32)
    rng = np.random.default_rng(42)
    dest.mkdir(parents=True, exist_ok=True)
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    x, y, z0 = (float(v) for v in base.ImagePositionPatient)
    bits = int(base.BitsStored)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if base.PixelRepresentation else (0, (1 << bits) - 1)
    paths = []
    for n in range(count):
        ds = copy.deepcopy(base)  # compress() rewrites elements in place; never share them between slices
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        ds.ImagePositionPatient = [x, y, z0 + n * 1.25]
        ds.SliceLocation = z0 + n * 1.25
        # A smooth drift plus noise: neighbouring slices differ like real ones, so neither
        # compression nor caching is flattered by identical frames.
        varied = pixels + int(20 * np.sin(n / 9.0)) + rng.integers(-6, 7, size=pixels.shape)
        ds.PixelData = np.clip(varied, lo, hi).astype(dtype).tobytes()
        path = dest / f"IM{n:04d}.dcm"
        if variant == "j2k":
            ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        ds.save_as(path, enforce_file_format=True)
        if variant == "jpeg-lossless":
            _gdcm_to_jpeg_lossless(path)
        paths.append(path)
    return paths


def _gdcm_to_jpeg_lossless(path: Path) -> None:
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise RuntimeError("gdcm could not read the synthetic slice")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError("gdcm could not encode JPEG lossless")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError("gdcm could not write the JPEG lossless slice")


# ------------------------------------------------------------------ the server process


def serve(workdir: Path, port_file: Path) -> None:
    """Child process: a fresh portal with one referring physician and an open referral."""
    from datetime import date

    from werkzeug.serving import WSGIRequestHandler, make_server

    from config import Config, TestConfig
    from review_portal import create_app
    from review_portal.auth.models import Institution, Role
    from review_portal.auth.services import create_user
    from review_portal.cases.disciplines import seed_disciplines
    from review_portal.cases.lifecycle import CaseStatus
    from review_portal.cases.services import Referral
    from review_portal.clock import utcnow
    from review_portal.db import create_all, session
    from review_portal.workflow.referrals import submit_referral

    # The decode sandbox as in production (TestConfig shrinks it for the limit tests).
    app = create_app(TestConfig, DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}", STORAGE_DIR=str(workdir / "store"),
                     SANDBOX_MEMORY_MB=Config.SANDBOX_MEMORY_MB, SANDBOX_SECONDS=Config.SANDBOX_SECONDS,
                     SANDBOX_WORKERS=Config.SANDBOX_WORKERS)
    create_all(app.extensions["db_engine"])
    with app.app_context():
        db = session()
        seed_disciplines(db)  # the schema comes from the models here; the migration seeds a real database
        hospital = Institution(name="Bench Hospital")
        db.add(hospital)
        db.flush()
        now = utcnow()
        user = create_user(db, email="bench@example.test", name="Bench Referrer", password=PASSWORD,
                           role=Role.REFERRING, now=now, institution=hospital)
        for n in range(4):
            case, _ = submit_referral(db, app.extensions["storage"], Referral(
                patient_name=f"Bench {n}", patient_dob=date(1960, 1, 1), patient_sex="female", patient_mrn=f"B{n}",
                question="?", diagnosis_in_question="x", plan_in_question="y", review_type="radiology_read",
                cancer_site="pediatric", priority="routine"), documents=[], scans=[], by=user, ip="", now=now,
                turnaround_days=TestConfig.TURNAROUND_DAYS)
            # No reviewer exists here, so routing parks the case in triage, where scans can't be added.
            case.status = CaseStatus.SUBMITTED.value
        db.commit()
    class KeepAlive(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like gunicorn and Orthanc: no TCP connect per request

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the benchmark's output
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=KeepAlive)
    port_file.write_text(str(server.server_port))
    server.serve_forever()


class MultipartBody:
    """A multipart/form-data body streamed from files, with a known length (no chunking, nothing in memory)."""

    def __init__(self, field: str, paths: list[Path], repeat: int = 1, extra: dict | None = None):
        self.boundary = "benchboundary7d1c"
        self.parts = []
        for key, value in (extra or {}).items():
            self.parts.append((f'--{self.boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode(), None))
        for r in range(repeat):
            for p in paths:
                head = (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="r{r}-{p.name}"\r\n'
                        f"Content-Type: application/dicom\r\n\r\n").encode()
                self.parts.append((head, p))
        self.tail = f"--{self.boundary}--\r\n".encode()
        self.length = sum(len(h) + (p.stat().st_size + 2 if p else 0) for h, p in self.parts) + len(self.tail)
        self._gen = self._chunks()
        self._buf = b""

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.length

    def _chunks(self):
        for head, path in self.parts:
            yield head
            if path is not None:
                with open(path, "rb") as fh:
                    while chunk := fh.read(1024 * 1024):
                        yield chunk
                yield b"\r\n"
        yield self.tail

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            try:
                self._buf += next(self._gen)
            except StopIteration:
                break
        if size < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:size], self._buf[size:]
        return out


def upload(session, base: str, case_id: int, paths: list[Path], repeat: int = 1):
    body = MultipartBody("scans", paths, repeat)
    started = time.perf_counter()
    r = session.post(f"{base}/cases/{case_id}/scans", data=body,
                     headers={"Content-Type": body.content_type, "X-Requested-With": "fetch"})
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    return elapsed, r.json()["ingest"], body.length


def series_of(db_path: Path, case_id: int) -> int | None:
    import sqlite3

    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
        row = conn.execute("SELECT s.id FROM series s JOIN studies st ON s.study_id = st.id WHERE st.case_id = ? "
                           "ORDER BY s.id LIMIT 1", (case_id,)).fetchone()
    return row[0] if row else None


def ingest_until_ready(session, base: str, db_path: Path, case_id: int, paths: list[Path], timeout: float = 600):
    """Upload, then wait until every instance is listed and viewable, and separately until the thumbnail.

    Returns (upload seconds, viewable seconds, thumbnail seconds, series id), all from the upload's start."""
    started = time.perf_counter()
    up, report, _ = upload(session, base, case_id, paths)
    viewable = thumb = None
    series_id = None
    deadline = started + timeout
    while (viewable is None or thumb is None) and time.perf_counter() < deadline:
        series_id = series_id or series_of(db_path, case_id)
        if series_id is not None:
            if viewable is None:
                r = session.get(f"{base}/cases/{case_id}/series/{series_id}.json")
                if r.status_code == 200 and r.json().get("count") == len(paths):
                    last = session.get(f"{base}/cases/{case_id}/series/{series_id}/slices/{len(paths) - 1}.jpg")
                    if last.status_code == 200:
                        viewable = time.perf_counter() - started
            if thumb is None and session.get(f"{base}/cases/{case_id}/series/{series_id}/thumbnail.png").status_code == 200:
                thumb = time.perf_counter() - started
        if viewable is None or thumb is None:
            time.sleep(0.02)
    return up, viewable, thumb, series_id, report


# ------------------------------------------------------------------ measurements


def render_figures(paths: list[Path]) -> dict:
    from review_portal.imaging import rendering

    out = {}
    for fmt in ("png", "jpeg"):
        for p in paths:  # cold pass: parses and caches headers
            rendering.render_frame(p, center=40.0, width=400.0, fmt=fmt)
        times = []
        for p in paths:
            t = time.perf_counter()
            rendering.render_frame(p, center=40.0, width=400.0, fmt=fmt)
            times.append((time.perf_counter() - t) * 1000)
        out[fmt] = statistics.median(times)
    times = []
    for p in paths[:50]:
        t = time.perf_counter()
        rendering.make_thumbnail(p)
        times.append((time.perf_counter() - t) * 1000)
    out["thumbnail"] = statistics.median(times)
    return out


def timed_passes(fetch, count: int) -> dict:
    """Median ms of the first request per frame (cold) and of a second pass (warm), for PNG then JPEG."""
    out = {}
    for fmt in ("png", "jpeg"):
        for label in ("cold", "warm"):
            times = []
            for i in range(count):
                t = time.perf_counter()
                fetch(i, fmt)
                times.append((time.perf_counter() - t) * 1000)
            out[(fmt, label)] = statistics.median(times)
    return out


def our_renders(session, base: str, case_id: int, series_id: int, count: int) -> dict:
    def fetch(i, fmt):
        r = session.get(f"{base}/cases/{case_id}/series/{series_id}/slices/{i}.{'png' if fmt == 'png' else 'jpg'}",
                        params={"wc": 40, "ww": 400})
        r.raise_for_status()
    return timed_passes(fetch, count)


def md_table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if n == 0 else "---:" for n in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--render-frames", type=int, default=50, help="frames rendered over HTTP per pass and syntax")
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the large upload (0 to skip)")
    parser.add_argument("--no-orthanc", action="store_true", help="skip the Orthanc comparison")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return

    import psutil
    import requests

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from orthanc import Orthanc

    print(f"Machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start "
          f"(shared with other work: prefer the ratios).")
    with tempfile.TemporaryDirectory(prefix="imaging-bench-") as tmp:
        tmp = Path(tmp)
        print(f"Synthesizing {args.slices} slices of 512 x 512 CT from 693_UNCR.dcm ...", flush=True)
        variants = {}
        for variant in ("uncompressed", "jpeg-lossless", "j2k"):
            t = time.perf_counter()
            variants[variant] = synthesize(tmp / variant, args.slices, variant)
            size = sum(p.stat().st_size for p in variants[variant]) / 2**20
            print(f"  {variant:14s} {size:7.1f} MB in {time.perf_counter() - t:5.1f} s", flush=True)
        n_render = min(args.render_frames, args.slices)

        port_file = tmp / "port"
        server_dir = tmp / "server"
        server_dir.mkdir()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(server_dir), str(port_file)], cwd=ROOT)
        orthanc = Orthanc()
        skip = "--no-orthanc given: comparison skipped" if args.no_orthanc else orthanc.available()
        ours: dict = {}
        theirs: dict = {}
        try:
            while not port_file.exists():
                if proc.poll() is not None:
                    raise SystemExit("the portal did not start")
                time.sleep(0.1)
            time.sleep(0.2)
            base = f"http://127.0.0.1:{port_file.read_text().strip()}"
            session = requests.Session()
            r = session.post(f"{base}/login", data={"email": "bench@example.test", "password": PASSWORD}, allow_redirects=False)
            assert r.status_code == 302, r.text

            # Warm the server (imports, decode sandbox start) with one other slice, so the first syntax is not charged.
            upload(session, base, 4, synthesize(tmp / "warm-up", 1, "uncompressed"))
            print("\n### Ingest, ours: POST /cases/<id>/scans, one multipart request with every file\n")
            rows = []
            for case_id, (variant, paths) in enumerate(variants.items(), start=1):
                up, viewable, thumb, series_id, report = ingest_until_ready(
                    session, base, server_dir / "bench.db", case_id, paths)
                ours[variant] = {"viewable": viewable, "thumb": thumb, "series": series_id, "case": case_id}
                rate = f"{len(paths) / viewable:.0f}" if viewable else "never"
                rows.append([variant, f"{up:.2f}", f"{viewable:.2f}" if viewable else "-", rate,
                             f"{thumb:.2f}" if thumb else "-", report["accepted"], len(report["rejected"])])
            md_table(["syntax", "upload answered s", "all viewable s", "instances/s (viewable)",
                      "last thumbnail s", "accepted", "rejected"], rows)

            if skip:
                print(f"\nOrthanc: {skip}")
            else:
                orthanc.start()
                print(f"\n### Ingest, Orthanc {orthanc.version()} (Debian package + GDCM plugin): one keep-alive "
                      f"POST /instances per file\n")
                rows = []
                for variant, paths in variants.items():
                    elapsed, ids = orthanc.ingest(paths)
                    theirs[variant] = {"seconds": elapsed, "ids": ids}
                    rows.append([variant, f"{elapsed:.2f}", f"{len(paths) / elapsed:.0f}"])
                md_table(["syntax", "seconds", "instances/s"], rows)

            print(f"\n### Render over HTTP, window 40/400, median ms over {n_render} frames "
                  f"(cold = first request for the frame in that format, warm = the second)\n")
            rows = []
            for variant in variants:
                o = ours[variant]
                ours[variant]["render"] = our_renders(session, base, o["case"], o["series"], n_render)
                if theirs:
                    ids = theirs[variant]["ids"]
                    theirs[variant]["render"] = timed_passes(
                        lambda i, fmt, ids=ids: orthanc.render(ids[i], fmt, 40, 400), n_render)
                for fmt in ("png", "jpeg"):
                    for label in ("cold", "warm"):
                        a = ours[variant]["render"][(fmt, label)]
                        b = theirs[variant]["render"][(fmt, label)] if theirs else None
                        rows.append([variant, fmt.upper(), label, f"{a:.1f}", f"{b:.1f}" if b else "-",
                                     f"{a / b:.2f}" if b else "-"])
            md_table(["syntax", "format", "pass", "ours ms", "Orthanc ms", "ratio ours/Orthanc"], rows)

            print("\n### Render in-process (review_portal.imaging.rendering, warm header cache, median over the series) "
                  "and the per-request overhead\n")
            rows = []
            for variant, paths in variants.items():
                f = render_figures(paths)
                http_cold = ours[variant]["render"][("png", "cold")]
                http_warm = ours[variant]["render"][("png", "warm")]
                rows.append([variant, f"{f['png']:.2f}", f"{f['jpeg']:.2f}", f"{f['thumbnail']:.2f}",
                             f"{http_cold:.1f}", f"{http_warm:.1f}", f"**{http_cold - f['png']:.1f}**"])
            md_table(["syntax", "PNG ms", "JPEG ms", "thumbnail ms", "HTTP PNG cold ms", "HTTP PNG warm ms",
                      "overhead ms (HTTP cold - in-process, target <= 2)"], rows)

            if theirs:
                print("\n### Summary: ours against Orthanc (one run; ratios are our time over Orthanc's, < 1 is faster)\n")
                rows = []
                for variant, paths in variants.items():
                    v, t = ours[variant]["viewable"], theirs[variant]["seconds"]
                    ingest = f"{len(paths) / v:.0f} vs {len(paths) / t:.0f} instances/s ({t / v:.2f}x)" if v else "-"
                    r, q = ours[variant]["render"], theirs[variant]["render"]
                    rows.append([variant, ingest] + [f"{r[(fmt, p)] / q[(fmt, p)]:.2f}" for fmt in ("png", "jpeg")
                                                     for p in ("cold", "warm")])
                md_table(["syntax", "ingest ours vs Orthanc (speed-up)", "PNG cold", "PNG warm", "JPEG cold",
                          "JPEG warm"], rows)

            if args.big_mb:
                paths = variants["uncompressed"]
                per_set = sum(p.stat().st_size for p in paths)
                repeat = max(1, round(args.big_mb * 2**20 / per_set))
                server = psutil.Process(proc.pid)
                baseline = server.memory_info().rss
                peak = [baseline]
                done = threading.Event()

                def sample():
                    while not done.is_set():
                        try:
                            peak[0] = max(peak[0], server.memory_info().rss)
                        except psutil.NoSuchProcess:
                            return
                        time.sleep(0.05)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                try:
                    elapsed, report, length = upload(session, base, 4, paths, repeat=repeat)
                finally:
                    done.set()
                sampler.join()
                print(f"\nLarge upload: {length / 2**30:.2f} GB ({len(paths) * repeat} files) in {elapsed:.1f} s; "
                      f"server RSS {baseline / 2**20:.0f} MB before, **peak {peak[0] / 2**20:.0f} MB** "
                      f"(target < 300 MB; accepted {report['accepted']}, already on file {report['duplicates']})")
        finally:
            orthanc.stop()
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
