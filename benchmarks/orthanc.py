"""Orthanc from Debian's packages (`orthanc`, `orthanc-gdcm`) as the imaging benchmark's reference.

Runs on loopback from a temp dir with a generated configuration (no DICOM port, no authentication,
no remote access, no storage compression) and the GDCM plugin so JPEG 2000 decodes. `Orthanc.available()`
says why not when the package is missing; benchmarks/imaging.py then skips the comparison.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PLUGIN_DIRS = ["/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    def __init__(self):
        self.binary = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
        self.plugin = next((str(Path(d) / "libOrthancGdcm.so") for d in PLUGIN_DIRS
                            if (Path(d) / "libOrthancGdcm.so").exists()), None)
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self.base = ""
        self.session = None

    def available(self) -> str | None:
        """None when it can run; otherwise the reason it cannot."""
        if not self.binary:
            return "Orthanc is not installed (apt-get install orthanc orthanc-gdcm): comparison skipped"
        if not self.plugin:
            return "the Orthanc GDCM plugin is not installed (apt-get install orthanc-gdcm): comparison skipped"
        return None

    def version(self) -> str:
        try:
            return self.session.get(f"{self.base}/system", timeout=10).json().get("Version", "?")
        except Exception:  # noqa: BLE001 - a label only
            return "?"

    def start(self) -> None:
        import requests

        self.tmp = Path(tempfile.mkdtemp(prefix="orthanc-bench-"))
        port = _free_port()
        config = {
            "Name": "portal-benchmark", "StorageDirectory": str(self.tmp / "storage"),
            "IndexDirectory": str(self.tmp / "index"), "HttpPort": port, "HttpServerEnabled": True,
            "DicomServerEnabled": False, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "HttpCompressionEnabled": False, "StorageCompression": False, "KeepAlive": True,
            "Plugins": [self.plugin], "Gdcm": {"Enable": True},
        }
        (self.tmp / "orthanc.json").write_text(json.dumps(config, indent=2))
        self.log = open(self.tmp / "orthanc.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([self.binary, str(self.tmp / "orthanc.json")], cwd=self.tmp,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.session.get(f"{self.base}/system", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.tmp / "orthanc.log").read_text(errors="replace")[-1500:]
                self.stop()
                raise RuntimeError(f"Orthanc did not start:\n{tail}")
            time.sleep(0.2)

    def ingest(self, paths: list[Path]) -> tuple[float, list[str]]:
        """REST ingest, one keep-alive POST /instances per file; returns seconds and the instance ids."""
        ids = []
        started = time.perf_counter()
        for p in paths:
            r = self.session.post(f"{self.base}/instances", data=p.read_bytes(),
                                  headers={"Content-Type": "application/dicom"})
            r.raise_for_status()
            ids.append(r.json()["ID"])
        return time.perf_counter() - started, ids

    def render(self, instance_id: str, fmt: str, center: float, width: float) -> bytes:
        r = self.session.get(f"{self.base}/instances/{instance_id}/rendered",
                             params={"window-center": center, "window-width": width},
                             headers={"Accept": "image/png" if fmt == "png" else "image/jpeg"})
        r.raise_for_status()
        return r.content

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
