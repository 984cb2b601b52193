"""Fixtures for the service's tests: a real Mosquitto broker and a fake hub.

``mosquitto`` starts ``/usr/sbin/mosquitto`` (Debian package ``mosquitto``) on a free port of
127.0.0.1 with a minimal config in a tmp dir. Without the binary the tests that take it are
skipped, with ``THERMAL_ACTION_REQUIRE_SERVICES=1`` (set by ``.ci/run``) they fail instead and
say how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REQUIRE_SERVICES_ENV = "THERMAL_ACTION_REQUIRE_SERVICES"
MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def _services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES_ENV, "0") not in ("", "0")


def _find_mosquitto() -> str | None:
    for path in MOSQUITTO_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("mosquitto")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    """Blocks until ``host:port`` accepts a TCP connection; raises TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepts connections on {host}:{port} after {timeout} s") from None
            time.sleep(0.02)


class MosquittoBroker:
    """A Mosquitto process on 127.0.0.1:``port``; ``stop()`` and ``start()`` again on the same port.

    Args:
        binary: the ``mosquitto`` executable.
        workdir: where the config file and the log go.
    """

    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                               "persistence false\nlog_dest stderr\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Starts the broker and waits until its port accepts connections."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start; its log:\n{self.log.read_text()[-2000:]}") from None

    def stop(self) -> None:
        """Stops the broker (its clients see the connection drop)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A running :class:`MosquittoBroker` (``.url``, ``.port``, ``.stop()``, ``.start()``)."""
    binary = _find_mosquitto()
    if binary is None:
        reason = "mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto)"
        if _services_required():
            pytest.fail(f"{reason}; {REQUIRE_SERVICES_ENV}=1 requires it", pytrace=False)
        pytest.skip(f"{reason}; set {REQUIRE_SERVICES_ENV}=1 to fail instead")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = MosquittoBroker(binary, workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class FakeHub:
    """Records the calls the ingest paths make on the hub (the interface of serve_spec.md)."""

    calls: list[tuple] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def _record(self, *call: object) -> None:
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    def submit(self, sensor_id, frames, transport):
        """Records ``("submit", sensor_id, frames, transport)``."""
        self._record("submit", sensor_id, frames, transport)

    def reject(self, sensor_id, transport, reason):
        """Records ``("reject", sensor_id, transport, reason)``."""
        self._record("reject", sensor_id, transport, reason)

    def connected(self, sensor_id, transport):
        """Records ``("connected", sensor_id, transport)``."""
        self._record("connected", sensor_id, transport)

    def disconnected(self, sensor_id, transport):
        """Records ``("disconnected", sensor_id, transport)``."""
        self._record("disconnected", sensor_id, transport)

    def of(self, kind: str) -> list[tuple]:
        """The recorded calls of one kind, in order."""
        with self.lock:
            return [c for c in self.calls if c[0] == kind]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        """Waits until ``predicate(self)`` holds (True) or ``timeout`` passed (False)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                return False
            with self.changed:
                self.changed.wait(0.05)
        return True


@pytest.fixture
def fake_hub() -> FakeHub:
    """A fresh :class:`FakeHub`."""
    return FakeHub()
