"""Scrolling a series over HTTP, as the viewer does: every opening fetches its slices again (patient images are
no-store), so the server's render cache is what a second scroll can gain. Also: JPEG 2000 decode options.

    /work/main/.venv/bin/python benchmarks/imaging_cache.py [--slices 100]

Uses benchmarks/imaging.py's synthetic 512 x 512 CT series (uncompressed, JPEG lossless, JPEG 2000) and its
server process (werkzeug, threaded, SQLite, sandbox on). Per syntax: ingest time, then three scrolls through
every slice as JPEG at W 400 / L 40: the first (cold), the same again (a second opening of the viewer), and at
another window (lung); then one PNG scroll. Prints median and p95 per request. Asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import imaging as bench


def server_cpu(pid: int) -> float:
    """CPU seconds of the portal process and its sandbox workers: the cost, apart from the noise of a shared box."""
    import psutil

    total = 0.0
    server = psutil.Process(pid)
    for proc in [server, *server.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def scroll(session, base: str, case_id: int, series_id: int, count: int, fmt: str, window: str, pid: int):
    times = []
    cpu = server_cpu(pid)
    for index in range(count):
        started = time.perf_counter()
        r = session.get(f"{base}/cases/{case_id}/series/{series_id}/slices/{index}.{fmt}?{window}")
        times.append((time.perf_counter() - started) * 1000)
        r.raise_for_status()
    return times, (server_cpu(pid) - cpu) * 1000 / count


def j2k_decoding(paths: list[Path]) -> None:
    import imagecodecs
    from pydicom import dcmread
    from pydicom.encaps import generate_frames
    from pydicom.pixels import pixel_array

    from review_portal.imaging import decoding, reading

    streams = [next(generate_frames(dcmread(p).PixelData, number_of_frames=1)) for p in paths]

    def median(fn, items) -> float:
        out = []
        for item in items:
            started = time.perf_counter()
            fn(item)
            out.append((time.perf_counter() - started) * 1000)
        return statistics.median(out)

    print("\nJPEG 2000 512 x 512 slice, decode only (median):")
    print(f"  pydicom as the viewer calls it    {median(lambda p: pixel_array(p), paths):7.1f} ms")
    for threads in (1, 2):
        ms = median(lambda s, n=threads: imagecodecs.jpeg2k_decode(s, numthreads=n), streams)
        print(f"  imagecodecs numthreads={threads}        {ms:7.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        copies = []
        for p in paths:
            ds = dcmread(p)
            ds.decompress()
            copy = Path(tmp) / p.name
            ds.save_as(copy, enforce_file_format=True)
            copies.append(copy)
        ms = median(lambda c: decoding._decode_frame(reading._load(c), 0), copies)
        print(f"  uncompressed copy (header + read) {ms:7.1f} ms   ({copies[0].stat().st_size // 1024} kB against "
              f"{paths[0].stat().st_size // 1024} kB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--no-j2k-decoding", action="store_true")
    args = parser.parse_args()
    import requests

    with tempfile.TemporaryDirectory(prefix="imaging-cache-bench-") as tmp:
        tmp = Path(tmp)
        variants = {v: bench.synthesize(tmp / v, args.slices, v) for v in ("uncompressed", "jpeg-lossless", "j2k")}
        port_file, server_dir = tmp / "port", tmp / "server"
        server_dir.mkdir()
        proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "imaging.py"), "--serve", str(server_dir),
                                 str(port_file)], cwd=ROOT, stderr=subprocess.DEVNULL)
        try:
            while not port_file.exists():
                if proc.poll() is not None:
                    raise SystemExit("the portal did not start")
                time.sleep(0.1)
            time.sleep(0.2)
            base = f"http://127.0.0.1:{port_file.read_text().strip()}"
            session = requests.Session()
            r = session.post(f"{base}/login", data={"email": "bench@example.test", "password": bench.PASSWORD},
                             allow_redirects=False)
            assert r.status_code == 302, r.text
            print(f"{args.slices} slices per series; per request: median / p95 wall ms, server CPU ms (with sandbox)")
            for case_id, (variant, paths) in enumerate(variants.items(), start=1):
                cpu = server_cpu(proc.pid)
                elapsed, report, _ = bench.upload(session, base, case_id, paths)
                ingest_cpu = (server_cpu(proc.pid) - cpu) * 1000 / len(paths)
                passes = [("first scroll JPEG", "jpg", "wc=40&ww=400"), ("again, same window", "jpg", "wc=40&ww=400"),
                          ("other window", "jpg", "wc=-600&ww=1500"), ("PNG scroll", "png", "wc=40&ww=400"),
                          ("PNG again", "png", "wc=40&ww=400")]
                figures = []
                for label, fmt, window in passes:
                    t, cpu_ms = scroll(session, base, case_id, case_id, len(paths), fmt, window, proc.pid)
                    figures.append(f"{label:20s} {statistics.median(t):6.1f} / {sorted(t)[int(len(t) * 0.95) - 1]:6.1f}"
                                   f"   CPU {cpu_ms:6.1f}")
                print(f"  {variant:14s} ingest {len(paths) / elapsed:5.0f}/s, server CPU {ingest_cpu:6.1f} ms per file "
                      f"(accepted {report['accepted']})")
                for f in figures:
                    print(f"      {f}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        if not args.no_j2k_decoding:
            j2k_decoding(variants["j2k"][:20])


if __name__ == "__main__":
    main()
