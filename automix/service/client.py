"""A minimal client for the service and a launcher for a local server, standard library only.

Used by the tests and by ``benchmarks/soak.py``: `LocalServer` runs ``automix serve`` on a free
loopback port in its own process group and stops it (and its workers) on exit.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

FileField = tuple[str, str, bytes]  # (form field, file name, content)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def multipart(fields: dict[str, str], files: Sequence[FileField] = ()) -> tuple[bytes, str]:
    """Encode a multipart/form-data body; returns (body, content type)."""
    boundary = secrets.token_hex(16)
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode() + b"\r\n")
    for name, filename, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class LocalServer:
    """``automix serve`` in a subprocess on 127.0.0.1 and a free port.

    ``args`` are extra ``serve`` options (``--workers 2``, ``--max-upload-mb 1``, ...).
    """

    def __init__(self, data_dir: Path, *args: str, ready_timeout_s: float = 30.0) -> None:
        self.data_dir, self.args, self.ready_timeout_s = Path(data_dir), args, ready_timeout_s
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalServer:
        cmd = [sys.executable, "-m", "automix", "serve", "--port", str(self.port),
               "--data-dir", str(self.data_dir), *self.args]
        self.proc = subprocess.Popen(cmd, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"automix serve exited with {self.proc.returncode}")
            try:
                if self.request("GET", "/v1/presets", timeout=2).status == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("automix serve did not answer in time")

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the server (it stops its workers), then SIGKILL its process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our session only: stray workers
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60.0) -> Response:
        target = urlsplit(self.url)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                            resp.read())
        finally:
            conn.close()

    def submit(self, fields: dict[str, str], files: Sequence[FileField] = (),
               path: str = "/v1/jobs") -> Response:
        body, content_type = multipart(fields, files)
        return self.request("POST", path, body, {"Content-Type": content_type})

    def wait(self, location: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Poll a job until it is done or failed; its JSON."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.request("GET", location).json()
            if job["status"] in ("done", "failed") or time.monotonic() > deadline:
                return job
            time.sleep(0.1)
