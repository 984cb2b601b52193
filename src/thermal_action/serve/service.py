"""Starting and stopping the service: data directory, token, model, workers, web server, MQTT."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from thermal_action.config import save_config
from thermal_action.alert_rule import resolve_alert_rule
from thermal_action.serve.config import ServeConfig, alert_overrides, check_serve_config
from thermal_action.serve.hub import Hub, ModelInfo
from thermal_action.serve.store import Store
from thermal_action.serve.workers import WorkerOptions, WorkerPool
from thermal_action.structures import FRAME_HEIGHT, FRAME_WIDTH

logger = logging.getLogger(__name__)

TOKEN_ENV = "THERMAL_ACTION_TOKEN"
#: Bytes one WebSocket message may carry (about 2,600 binary frames of 40x60).
MAX_WS = 25 * 1024 * 1024


def resolve_token(cfg: ServeConfig) -> tuple[str, str]:
    """The token and where it came from: the config, ``$THERMAL_ACTION_TOKEN``, or generated."""
    if cfg.token:
        return cfg.token, "config"
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV], TOKEN_ENV
    return secrets.token_urlsafe(18), "generated"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def model_info(checkpoint: str | Path, cfg: ServeConfig, onnx_path: str | None) -> ModelInfo:
    """Reads the model once in the service's own process (classes, frame size, lag) and
    decides the alert rule: the checkpoint's, with the config's ``fall_*`` keys applied."""
    from thermal_action.inference.predictor import Predictor

    p = Predictor.from_checkpoint(checkpoint, backend=cfg.backend, onnx_path=onnx_path)
    rule = resolve_alert_rule(p.alert_rule, alert_overrides(cfg))
    fall_index = p.fall_index(rule.fall_class) if rule.fall_class in p.class_names else None
    if fall_index is None:
        logger.warning("class %r is not one of the model's classes: no fall alerts", rule.fall_class)
    lag = 0 if cfg.causal else p.frames_after
    return ModelInfo(p.class_names, tuple(p.frame_size or (FRAME_HEIGHT, FRAME_WIDTH)), fall_index, rule,
                     lag, p.window_length)


class Service:
    """The whole service, not yet serving: :meth:`serve_forever` (the CLI) or
    :class:`ServiceThread` (tests, benchmarks) runs it.

    Args:
        cfg: the service config.
        checkpoint: a ``.ckpt`` from ``train`` or an ``.onnx`` from ``export``.
    """

    def __init__(self, cfg: ServeConfig, checkpoint: str | Path):
        import uvicorn

        from thermal_action.serve.app import create_app

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
        self.token, self.token_source = resolve_token(cfg)
        token_file = self.data_dir / "token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        save_config(replace(cfg, token="<in the token file>" if cfg.token else ""), self.data_dir / "serve_config.yaml")
        onnx_path = None
        if cfg.backend == "onnx" and checkpoint.suffix != ".onnx":
            onnx_path = str(self.data_dir / "model.onnx")  # exported once, here, not beside the checkpoint
        self.info = model_info(checkpoint, cfg, onnx_path)
        if onnx_path is not None:
            checkpoint = Path(onnx_path)
        n = cfg.workers or available_cores()
        opts = WorkerOptions(
            checkpoint=str(checkpoint), backend=cfg.backend, threads=cfg.threads_per_worker, step=cfg.step,
            causal=cfg.causal, batch_wait=cfg.batch_wait, batch_clips=cfg.batch_clips,
            alert_rule=self.info.alert_rule, alerts=self.info.fall_index is not None, fps=cfg.fps,
            max_batch_frames=cfg.max_batch_frames, live_interval_s=1.0 / cfg.dashboard_fps)
        self.store = Store(self.data_dir / "serve.db")
        self.hub: Hub
        pool = WorkerPool(n, opts, on_message=lambda w, m: self.hub.on_message(w, m),
                          on_restart=lambda w, lost: self.hub.on_restart(w, lost))
        self.hub = Hub(cfg, self.info, self.store, pool, rooms=rooms)
        self.app = create_app(self.hub, self.token)
        self.mqtt: Any = None
        self.socket = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((cfg.host, cfg.port))
        self.socket.listen(2048)  # connections wait in the backlog until the server accepts: the banner is true at once
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False, ws_max_size=MAX_WS))

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

    def stop_backend(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
        self.hub.stop()
        self.store.close()

    def banner(self) -> str:
        return f"serving on {self.url}/?token={self.token}"

    def serve_forever(self) -> None:
        """Runs until interrupted (Ctrl-C / SIGTERM)."""
        self.start_backend()
        print(self.banner(), flush=True)
        if self.token_source == "generated":
            print(f"(token generated; also in {self.data_dir / 'token'}; set {TOKEN_ENV} or token= to choose one)",
                  flush=True)
        try:
            self.server.run(sockets=[self.socket])
        except KeyboardInterrupt:  # uvicorn shut down gracefully, then re-raises Ctrl-C
            pass
        finally:
            self.stop_backend()
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
        self.service.start_backend()
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
