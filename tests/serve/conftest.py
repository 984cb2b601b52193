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


# -- PostgreSQL and RabbitMQ: the store and the broker of several instances (README, "More than one machine")

POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"


def _missing(reason: str) -> None:
    if _services_required():
        pytest.fail(f"{reason}; {REQUIRE_SERVICES_ENV}=1 requires it", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE_SERVICES_ENV}=1 to fail instead")


def _find_postgres_bin() -> Path | None:
    import glob

    found = sorted(glob.glob(f"{POSTGRES_BIN_GLOB}/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """A private PostgreSQL cluster: ``initdb`` into a temp dir, listening on a unix socket
    there only (no TCP port to collide with), trust authentication for its one user.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` user
    (the Debian package creates it) and its commands run through ``runuser``.

    Args:
        bindir: the directory of ``initdb`` and ``pg_ctl``.
    """

    USER = "thermal"

    def __init__(self, bindir: Path):
        import pwd
        import tempfile

        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="thermal-pg-"))  # short: a socket path has ~100 bytes
        self.data = self.root / "data"
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._n = 0

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.USER,
                  "-E", "UTF8", "--locale=C", "--no-sync")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60",
                  "-o", f"-k {self.root} -c listen_addresses='' -p {self.port} -c fsync=off", "start")

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL of database ``dbname`` through the cluster's socket."""
        return f"postgresql://{self.USER}@/{dbname}?host={self.root}&port={self.port}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """A running :class:`PostgresServer` for the whole session (each test makes its own database)."""
    bindir = _find_postgres_bin()
    if bindir is None:
        _missing("PostgreSQL is not installed (Debian/Ubuntu: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (pip install 'thermal-action[cluster]')")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RabbitBroker:
    """A private RabbitMQ node (its own node name, ports, data and log dirs in ``workdir``) with
    the plugins the cluster uses: MQTT (gateways publish as to Mosquitto) and the consistent-hash
    exchange (:mod:`thermal_action.serve.amqp`). Its ``epmd`` (Erlang's port mapper) runs on a
    port of its own and is stopped with it.

    Args:
        workdir: its config, data, logs and Erlang cookie.
    """

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.amqp_port, self.mqtt_port, self.dist_port, self.epmd_port = (free_port() for _ in range(4))
        self.node = f"thermal{self.amqp_port}@localhost"
        (workdir / "enabled_plugins").write_text("[rabbitmq_mqtt,rabbitmq_consistent_hash_exchange].\n")
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt_port}\n"
            "mqtt.allow_anonymous = true\nloopback_users = none\n")
        self.env = {**os.environ, "HOME": str(workdir), "RABBITMQ_NODENAME": self.node,
                    "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"), "RABBITMQ_LOG_BASE": str(workdir / "log"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
                    "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"), "RABBITMQ_PID_FILE": str(workdir / "pid"),
                    "RABBITMQ_DIST_PORT": str(self.dist_port), "ERL_EPMD_PORT": str(self.epmd_port)}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>/``: where the instances consume."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def mqtt_url(self) -> str:
        """``mqtt://127.0.0.1:<port>``: where gateways (``replay``) publish."""
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def _ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([f"{RABBITMQ_BIN}/rabbitmqctl", "-n", self.node, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        with open(self.workdir / "server.log", "ab") as log:
            self.proc = subprocess.Popen([f"{RABBITMQ_BIN}/rabbitmq-server"], env=self.env, stdout=log, stderr=log,
                                         cwd=self.workdir)
        done = self._ctl("wait", str(self.workdir / "pid"), "--timeout", "120", timeout=150)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"RabbitMQ did not start:\n{done.stdout[-1000:]}{done.stderr[-1000:]}\n"
                               f"{(self.workdir / 'server.log').read_text()[-2000:]}")
        wait_for_port(self.amqp_port)
        wait_for_port(self.mqtt_port)

    def stop(self) -> None:
        if self.proc is not None:
            self._ctl("stop", timeout=60)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env, capture_output=True)


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory):
    """A running :class:`RabbitBroker` for the session (``.url`` AMQP, ``.mqtt_url``)."""
    if not os.access(f"{RABBITMQ_BIN}/rabbitmq-server", os.X_OK):
        _missing("RabbitMQ is not installed (Debian/Ubuntu: apt-get install rabbitmq-server)")
    try:
        import pika  # noqa: F401
    except ImportError:
        _missing("pika is not installed (pip install 'thermal-action[cluster]')")
    broker = RabbitBroker(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
