"""A real errand server per test session (and per test where it gets restarted)."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import httpx
import pytest

from errand_client import ErrandClient

REPO = Path(__file__).resolve().parents[3]
SDK = Path(__file__).resolve().parents[1]


#: A webhook secret lets jobs carry a callback_url; callbacks stay on loopback.
SERVE_FLAGS = [
    "--webhook-secret",
    "whsec_" + base64.b64encode(b"errand-python-sdk-tests-key-0001").decode(),
    "--allow-private-callbacks",
    "true",
]


def errand_bin() -> str:
    """ERRAND_BIN, else the repository's debug build."""
    path = os.environ.get("ERRAND_BIN") or str(REPO / "target" / "debug" / "errand")
    if not Path(path).exists():
        pytest.fail(f"no errand binary at {path}: build it or set ERRAND_BIN", pytrace=False)
    return path


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    """Poll ``cond`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def die_with_parent() -> None:
    """In a child before exec: get SIGKILL when the test runner dies (Linux), so that a
    killed runner leaves no server behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Server:
    """``errand serve`` on a loopback port over a data directory, stopped by PID."""

    def __init__(self, data_dir: str, *flags: str) -> None:
        self.data_dir = data_dir
        self.flags = list(flags)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.address: Optional[str] = None
        self.lines: List[str] = []

    @property
    def url(self) -> str:
        assert self.address is not None
        return f"http://{self.address}"

    def start(self, address: str = "127.0.0.1:0", timeout: float = 30.0) -> None:
        """Start and read the address from the first stdout line."""
        deadline = time.monotonic() + timeout
        while True:
            if self._try_start(address, deadline):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"errand did not start on {address}: {self.lines[-20:]}")
            time.sleep(0.2)  # the port may still be held by the previous process

    def _try_start(self, address: str, deadline: float) -> bool:
        log = open(Path(self.data_dir) / "server.log", "ab")
        self.proc = subprocess.Popen(
            [errand_bin(), "serve", "--listen", address, "--data-dir", self.data_dir, *SERVE_FLAGS, *self.flags],
            stdout=subprocess.PIPE,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        first = self._first_line(self.proc, deadline)
        if first is None or "listening on http://" not in first:
            self.stop()
            return False
        self.address = first.split("http://", 1)[1].strip()
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        return True

    def _first_line(self, proc: "subprocess.Popen[bytes]", deadline: float) -> Optional[str]:
        box: List[str] = []
        t = threading.Thread(target=lambda: box.append(proc.stdout.readline().decode()), daemon=True)  # type: ignore[union-attr]
        t.start()
        t.join(max(0.1, deadline - time.monotonic()))
        return box[0] if box and box[0] else None

    def _drain(self, proc: "subprocess.Popen[bytes]") -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.lines.append(raw.decode(errors="replace"))

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running_server(*flags: str) -> Iterator[Server]:
    """A started server over a temporary data directory, stopped (and the directory
    removed) on leaving; ``flags`` are added to ``errand serve``."""
    with tempfile.TemporaryDirectory(prefix="errand-py-") as d:
        s = Server(d, *flags)
        s.start()
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One server for the tests that do not restart it (each uses queues of its own)."""
    with running_server() as s:
        yield s


@pytest.fixture
def own_server() -> Iterator[Server]:
    """A server of the test's own, which the test may kill and restart."""
    with running_server() as s:
        yield s


@pytest.fixture
def small_server() -> Iterator[Server]:
    """A server that takes request bodies of at most 300,000 bytes."""
    with running_server("--max-request-bytes", "300000") as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[ErrandClient]:
    c = ErrandClient(server.url, timeout=30)
    try:
        yield c
    finally:
        c.close()


_counter = [0]


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue name of the test's own."""
    _counter[0] += 1
    return f"py-{request.node.name[:60]}-{_counter[0]}".replace("[", "-").replace("]", "")


def counts(client: ErrandClient, queue: str) -> dict:
    """The queue's counts per state (all zero for a queue not seen yet)."""
    from errand_client import NotFound

    try:
        return client.get_queue(queue)["counts"]
    except NotFound:
        return {}


PYTHON = sys.executable


def attempts(base_url: str, job_id: str) -> list:
    """The job's recorded attempts (``GET /v1/jobs/{id}/attempts``; the client has no
    wrapper for it), first first."""
    resp = httpx.get(f"{base_url}/v1/jobs/{job_id}/attempts", timeout=30)
    resp.raise_for_status()
    return list(resp.json()["attempts"])
