"""Starting and stopping the service: data directory, token, model, workers, web server, MQTT.

One service per data directory: it holds an exclusive lock on ``<data_dir>/serve.lock`` for its
lifetime (a second one is refused with one line, exit code 2); the kernel drops the lock when
the process ends, however it ends. SIGTERM (systemd, ``docker stop``) stops it as Ctrl-C does:
the web server closes, the workers are stopped, the database is closed. Workers also exit by
themselves when the service process is gone (:mod:`~thermal_action.serve.workers`).

The token: ``token=`` in the config, else ``$THERMAL_ACTION_TOKEN``, else the one in
``<data_dir>/token`` (kept from an earlier start, so gateways keep working across restarts),
else a new one, generated and written there (mode 0600).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from thermal_action.config import save_config
from thermal_action.data.rooms import RoomMap
from thermal_action.errors import DataDirInUse
from thermal_action.serve.config import ServeConfig, check_serve_config
from thermal_action.serve.hub import Hub
from thermal_action.serve.model import load_model
from thermal_action.serve.notify import Notifier
from thermal_action.serve.protocol import MAX_MESSAGE_BYTES
from thermal_action.serve.store import DB_FILE, FoldRule, Store
from thermal_action.serve.workers import WorkerOptions, WorkerPool

logger = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # not POSIX: no data directory lock
    fcntl = None

TOKEN_ENV = "THERMAL_ACTION_TOKEN"
TOKEN_FILE = "token"
LOCK_FILE = "serve.lock"


def resolve_token(cfg: ServeConfig, data_dir: Path) -> tuple[str, str]:
    """The token and where it came from: the config, ``$THERMAL_ACTION_TOKEN``, the data
    directory's token file (an earlier start's), or generated."""
    if cfg.token:
        return cfg.token, "config"
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV], TOKEN_ENV
    try:
        kept = (data_dir / TOKEN_FILE).read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept, "token file"
    return secrets.token_urlsafe(18), "generated"


def write_token(path: Path, token: str) -> None:
    """Writes ``token`` to ``path``, readable by its owner only from the first byte on."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(tmp, 0o600)  # a leftover tmp file keeps its old mode through O_CREAT
    os.replace(tmp, path)


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/serve.lock`` until :meth:`release` (or the process
    ends): two services on one directory would share its token and end each other's alerts.

    Raises:
        DataDirInUse: another process holds it (the message names its pid).
    """

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None
        if fcntl is None:
            logger.warning("no fcntl here: %s is not locked against a second service", data_dir)
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirInUse(f"data directory {data_dir} is in use by another thermal-action serve (pid "
                               f"{holder}); stop that one or choose another data_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the path of Ctrl-C


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Service:
    """The whole service, not yet serving: :meth:`serve_forever` (the CLI) or
    :class:`ServiceThread` (tests, benchmarks) runs it.

    Args:
        cfg: the service config.
        checkpoint: a ``.ckpt`` from ``train`` or an ``.onnx`` from ``export``.
    """

    def __init__(self, cfg: ServeConfig, checkpoint: str | Path):
        self.cfg = check_serve_config(cfg)
        rooms = None
        if cfg.rooms:  # read first: a bad file stops the start with its message, before any model loads
            from thermal_action.data.rooms import read_rooms

            rooms = read_rooms(cfg.rooms)
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        self.data_dir = Path(cfg.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = DataDirLock(self.data_dir)  # before anything in the directory is written
        try:
            self._build(checkpoint, rooms)
        except BaseException:
            self.lock.release()
            raise

    def _build(self, checkpoint: Path, rooms: RoomMap | None) -> None:
        import uvicorn

        from thermal_action.serve.app import create_app

        cfg = self.cfg
        self.token, self.token_source = resolve_token(cfg, self.data_dir)
        write_token(self.data_dir / TOKEN_FILE, self.token)
        save_config(replace(cfg, token="<in the token file>" if cfg.token else "",
                            alert_webhook_secret="<set>" if cfg.alert_webhook_secret else ""),
                    self.data_dir / "serve_config.yaml")
        onnx_path = None
        if cfg.backend == "onnx" and checkpoint.suffix != ".onnx":
            onnx_path = str(self.data_dir / "model.onnx")  # exported once, here, not beside the checkpoint
        self.model, self.info = load_model(checkpoint, cfg, onnx_path)  # the one read of the model file
        n = cfg.workers or available_cores()
        opts = WorkerOptions.from_config(cfg, self.model, self.info.alert_rule, alerts=self.info.fall_index is not None)
        self.instance = cfg.instance or (socket.gethostname() if cfg.store_url else "")
        self.store = Store(cfg.store_url or self.data_dir / DB_FILE,
                           FoldRule(cfg.alert_fold_seconds, cfg.alert_fold_distance_px), self.instance)
        self.hub: Hub
        pool = WorkerPool(n, opts, on_message=lambda w, m: self.hub.on_message(w, m),
                          on_restart=lambda w, lost: self.hub.on_restart(w, lost))
        self.hub = Hub(cfg, self.info, self.store, pool, rooms=rooms, notifier=Notifier.from_config(cfg))
        self.app = create_app(self.hub, self.token)
        self.mqtt: Any = None
        self.amqp: Any = None
        self.socket = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((cfg.host, cfg.port))
        self.socket.listen(2048)  # connections wait in the backlog until the server accepts: the banner is true at once
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False, ws_max_size=MAX_MESSAGE_BYTES))

    @property
    def url(self) -> str:
        host = self.cfg.host if self.cfg.host not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start_backend(self, ready_timeout: float = 180.0) -> None:
        """Workers (waits until their models are loaded), the tick thread, MQTT."""
        self.hub.start()
        self.hub.pool.wait_ready(ready_timeout)
        if self.cfg.mqtt_url:
            from thermal_action.serve.mqtt import MqttIngest

            self.mqtt = MqttIngest(self.hub, self.cfg)
            self.mqtt.start()
        if self.cfg.amqp_url:
            from thermal_action.serve.amqp import AmqpIngest

            self.amqp = AmqpIngest(self.hub, self.cfg, self.instance, on_moved=self._sensor_moved_here)
            self.amqp.start()

    def _sensor_moved_here(self, sensor_id: str) -> None:
        """A sensor that arrived from another instance raised nothing here: the falls that
        instance was following on it are over, as far as anyone can tell (nobody else would end them)."""
        why = (f"the sensor moved to instance {self.instance}, which saw no fall there for "
               f"{self.cfg.takeover_seconds:g} s")
        for row in self.store.end_raises_of_others(sensor_id, why):
            self.hub.notifier.notify("ended", row)

    def stop_backend(self) -> None:
        try:
            if self.mqtt is not None:
                self.mqtt.stop()
            if self.amqp is not None:
                self.amqp.stop()
            self.hub.stop()
            self.store.close()
        finally:
            self.lock.release()

    def banner(self) -> str:
        return f"serving on {self.url}/?token={self.token}"

    def serve_forever(self) -> None:
        """Runs until interrupted (Ctrl-C or SIGTERM, alike)."""
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
        try:
            self.start_backend()
            print(self.banner(), flush=True)
            if self.token_source in ("generated", "token file"):
                how = "generated" if self.token_source == "generated" else "kept from an earlier start"
                print(f"(token {how}, in {self.data_dir / TOKEN_FILE}; set {TOKEN_ENV} or token= to choose one)",
                      flush=True)
            # uvicorn handles SIGINT and SIGTERM while it runs, shuts down gracefully, then raises
            # the signal again with our handlers back: both end here as KeyboardInterrupt.
            self.server.run(sockets=[self.socket])
        except KeyboardInterrupt:
            pass
        finally:
            try:
                self.stop_backend()
            finally:
                if main_thread:
                    signal.signal(signal.SIGTERM, previous)
        print("stopped", flush=True)


def run_service(cfg: ServeConfig, checkpoint: str | Path) -> None:
    """``thermal-action serve``: builds the service and serves until interrupted."""
    Service(cfg, checkpoint).serve_forever()


class ServiceThread:
    """The service in a background thread of this process (tests, benchmarks)::

        with ServiceThread(cfg, "best.ckpt") as svc:
            requests.get(svc.url + "/api/sensors", headers={"Authorization": f"Bearer {svc.token}"})
    """

    def __init__(self, cfg: ServeConfig, checkpoint: str | Path):
        self.service = Service(cfg, checkpoint)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def token(self) -> str:
        return self.service.token

    @property
    def hub(self) -> Hub:
        return self.service.hub

    def __enter__(self) -> "ServiceThread":
        try:
            self.service.start_backend()
        except BaseException:
            self.service.stop_backend()
            raise
        self._thread = threading.Thread(target=self.service.server.run, kwargs={"sockets": [self.service.socket]},
                                        name="serve-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.service.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.service.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.service.stop_backend()
