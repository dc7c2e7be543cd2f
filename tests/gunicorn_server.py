"""gunicorn in a subprocess for the tests that need the real WSGI server (DEBUG off, several workers)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first_answer(port: int, path: str, process: subprocess.Popen, *, timeout: float = 60.0):
    """(status, headers, body) of the first answer to GET path once the server listens; fails if it dies first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.3)


@contextlib.contextmanager
def gunicorn(env: dict, *, args: list[str], log: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run `gunicorn prodplan.wsgi <args>` in its own session with env; stopped (the whole group) on exit."""
    out = log.open("w") if log else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "prodplan.wsgi:application", *args], cwd=ROOT,
                               env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        if log:
            out.close()
