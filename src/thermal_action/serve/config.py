"""The service's typed configuration: defaults here, a YAML file (``serve --config``) and
``key=value`` arguments override them, unknown keys are errors, and the resolved config is
written to the data directory at every start (``serve_config.yaml``). A loaded config is
frozen, like the training config: :func:`thermal_action.config.replace_values` makes a changed,
checked copy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from thermal_action.alert_rule import AlertOverrides
from thermal_action.config import load_config, ranged
from thermal_action.errors import ConfigError
from thermal_action.serve.protocol import MQTT_FRAMES_TOPIC, IngestLimits
from thermal_action.structures import PREDICTION

BACKENDS = ("torch", "onnx")


@dataclass(frozen=True)
class ServeConfig:
    # -- network and security
    host: str = "127.0.0.1"  # the address to bind: localhost only unless told otherwise (0.0.0.0: all)
    port: int = ranged(8765, 0, 65535)  # 0: any free port (printed at start)
    token: str = ""  # access token for ingest and dashboard; empty: $THERMAL_ACTION_TOKEN, else generated and printed
    data_dir: str = "serve_data"  # SQLite database, resolved config and token file; nothing is written elsewhere
    # -- compute
    workers: int = ranged(0, 0, 256)  # worker processes, each owning a share of the sensors; 0: one per available core
    threads_per_worker: int = ranged(1, 1, 256)  # torch threads in each worker
    backend: str = "torch"  # "torch" (.ckpt) or "onnx" (an exported .onnx; ONNX Runtime)
    step: int = ranged(PREDICTION.step, 1, 10_000)  # frames between scored keyframes (6: about once a second)
    causal: bool = False  # keyframe at the window's end (no lag, lower accuracy) instead of its centre
    batch_wait: int = ranged(0, 0, 1000)  # rounds a completed window may wait for others to share a forward pass
    batch_clips: int = ranged(16, 1, 4096)  # clips (sensor keyframes) per forward pass at most
    max_batch_frames: int = ranged(512, 1, 1_000_000)  # frames a worker takes from its queue per round at most
    max_queue_frames: int = ranged(1200, 1, 10_000_000)  # frames waiting per worker; beyond, new frames are dropped (counted)
    move_queue_frames: int = ranged(600, 0, 10_000_000)  # frames waiting on a worker beyond which its sensors may move to one with at most half as many waiting (their windows restart there); 0: never move
    move_interval_seconds: float = ranged(5.0, 0.0, 86_400.0)  # a worker sheds at most one sensor this often, and a moved sensor stays at least this long
    # -- alerts: overrides of the checkpoint's fall alert rule (thermal_action.alert_rule); null keeps its value
    fall_class: str | None = None  # the class whose score raises fall alerts
    fall_threshold: float | None = ranged(None, 0.0, 1.0, low_open=True)  # fall score that counts as fallen; the checkpoint's is the one train calibrated
    fall_alert_seconds: float | None = ranged(None, 0.0, 3600.0)  # the score must stay at or above the threshold this long before an alert
    fall_alert_gap_seconds: float | None = ranged(None, 0.0, 3600.0)  # seconds without a prediction of the person that do not break a run
    fall_alert_cooldown_seconds: float | None = ranged(None, 0.0, 86_400.0)  # a new run of the person this soon after an alert continues it (no second alert)
    fall_bed_threshold: float | None = ranged(None, 0.0, 1.0, low_open=True)  # stricter threshold for a person mostly on a bed/couch zone
    fps: float = ranged(PREDICTION.fps, 0.1, 1000.0)  # sensor frame rate (turns frame counts into seconds)
    alert_fold_seconds: float | None = ranged(120.0, 0.0, 86_400.0)  # a raise of a NEW track id folds into an unacknowledged alert of the same sensor whose person was last seen this recently (or is still down) ...; null: never across track ids
    alert_fold_distance_px: float = ranged(5.0, 0.0, 1000.0)  # ... and at most this far from the new box (gap between the boxes, input pixels; 0: they must touch): the tracker lost the person and found them again
    # -- sensors
    max_sensors: int = ranged(256, 1, 100_000)  # sensors at most; a new one beyond takes the place of one that never sent a usable frame, or of one idle for forget_sensor_seconds, else is refused
    rooms: str = ""  # layout file (rooms.json): each sensor's furniture; zones set through the API win; "" = none
    forget_sensor_seconds: float = ranged(3600.0, 1.0, 10_000_000.0)  # idle this long (no connection, stream ended, no fall going on): a sensor may be forgotten to make room
    max_frames_per_message: int = ranged(256, 1, 10_000)  # frames in one ingest message at most; more: refused (413)
    max_boxes_per_frame: int = ranged(32, 1, 1024)  # boxes a gateway may send per frame; more: the message is refused (413)
    silent_seconds: float = ranged(10.0, 0.1, 86_400.0)  # no frame for this long: the sensor shows as silent
    end_stream_seconds: float = ranged(30.0, 0.1, 86_400.0)  # ... and after this long its stream is ended (pending keyframes scored, alerts closed)
    new_stream_gap_seconds: float = ranged(60.0, 0.1, 86_400.0)  # a timestamp jump larger than this (or backwards) starts a new stream
    # -- storage
    store_every_seconds: float = ranged(5.0, 0.0, 86_400.0)  # one stored prediction per person per this many seconds (0: all)
    keep_hours: float = ranged(168.0, 0.01, 87_600.0)  # stored predictions older than this are deleted (alerts are kept)
    clip_seconds_before: float = ranged(10.0, 0.0, 60.0)  # an alert's clip starts this long before its raise
    clip_seconds_after: float = ranged(10.0, 0.0, 60.0)  # ... and ends this long after it
    keep_clip_days: float = ranged(30.0, 0.01, 3650.0)  # clips of alerts raised longer ago are deleted (the alert is kept)
    # -- how far behind
    delay_warning_seconds: float = ranged(15.0, 0.1, 86_400.0)  # p95 of (frame processed - its capture time) over the last minute above this: the service is behind
    # -- dashboard
    dashboard_fps: float = ranged(3.0, 0.1, 30.0)  # live images per second per sensor sent to each open dashboard
    # -- MQTT
    mqtt_url: str = ""  # e.g. mqtt://127.0.0.1:1883 to subscribe to a broker; empty: no MQTT
    mqtt_topic: str = MQTT_FRAMES_TOPIC.format(sensor="+")  # subscription ("thermal/+/frames"); the '+' level is the sensor id
    mqtt_username: str = ""
    mqtt_password: str = ""
    # -- several instances (README, "More than one machine"; the cluster extra)
    instance: str = ""  # this instance's name among several sharing a store and a broker (distinct per instance); empty: the host name
    store_url: str = ""  # postgresql://user@host/db: the store all instances share; empty: SQLite in data_dir (one machine)
    amqp_url: str = ""  # amqp://user:password@host:5672/ : take frames from RabbitMQ's partition queues (thermal_action.serve.amqp); empty: none
    amqp_exchange: str = "thermal.frames"  # the consistent-hash exchange; its partition queues are <exchange>.0 ... .<amqp_partitions - 1>
    amqp_partitions: int = ranged(16, 1, 4096)  # partition queues; every instance uses the same number
    amqp_prefetch: int = ranged(200, 1, 65535)  # messages the broker sends ahead of acknowledgements (redelivered elsewhere if this instance dies)
    amqp_heartbeat_seconds: int = ranged(5, 1, 600)  # a silent link is declared dead after two of these: then its partitions fail over
    takeover_seconds: float = ranged(60.0, 1.0, 86_400.0)  # a sensor that moved here and raised nothing for this long: the other instances' ongoing raises of it end
    # -- alert notifications (raised, repeat, acknowledged, resolved, ended)
    alert_webhook_url: str = ""  # http(s):// address that gets each alert event as a JSON POST; empty: none
    alert_webhook_secret: str = ""  # signs each webhook POST (HMAC-SHA256, X-Thermal-Action-Signature); empty: $THERMAL_ACTION_WEBHOOK_SECRET, else unsigned; never written to serve_config.yaml
    mqtt_alert_topic: str = ""  # topic each alert event is published to (QoS 1, not retained; {sensor_id} replaced); empty: none
    mqtt_alert_url: str = ""  # broker for mqtt_alert_topic; empty: mqtt_url's
    notify_retries: int = ranged(6, 0, 100)  # tries after the first per message, backoff doubling each time
    notify_backoff_seconds: float = ranged(1.0, 0.01, 60.0)  # wait before the first retry
    notify_queue: int = ranged(1000, 1, 1_000_000)  # messages waiting per destination; beyond, dropped (dead letters)
    notify_timeout_seconds: float = ranged(5.0, 0.1, 120.0)  # one try's limit (HTTP answer, broker acknowledgement)


def check_serve_config(cfg: ServeConfig) -> ServeConfig:
    """The checks ranges cannot express."""
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"config key 'backend': {cfg.backend!r} is not one of {', '.join(BACKENDS)}")
    if not cfg.data_dir:
        raise ConfigError("config key 'data_dir' must name a directory")
    if cfg.end_stream_seconds < cfg.silent_seconds:
        raise ConfigError(f"config key 'end_stream_seconds' ({cfg.end_stream_seconds}) must be >= "
                          f"'silent_seconds' ({cfg.silent_seconds})")
    if cfg.mqtt_url and not cfg.mqtt_url.startswith(("mqtt://", "tcp://")):
        raise ConfigError(f"config key 'mqtt_url': {cfg.mqtt_url!r} must look like mqtt://host:port")
    if cfg.mqtt_url and cfg.mqtt_topic.count("+") != 1:
        raise ConfigError(f"config key 'mqtt_topic': {cfg.mqtt_topic!r} needs exactly one '+' level (the sensor id)")
    if cfg.store_url and not cfg.store_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"config key 'store_url': {cfg.store_url!r} must be a postgresql:// URL (empty: SQLite)")
    if cfg.amqp_url:
        if not cfg.amqp_url.startswith(("amqp://", "amqps://")):
            raise ConfigError(f"config key 'amqp_url': {cfg.amqp_url!r} must look like amqp://user:password@host:5672/")
        if cfg.mqtt_url:
            raise ConfigError("config keys 'amqp_url' and 'mqtt_url': choose one; with several instances the "
                              "gateways publish to the broker and every instance takes its sensors from amqp_url")
        if not cfg.store_url:
            raise ConfigError("config key 'amqp_url' shares the sensors among instances, which need one store: "
                              "set 'store_url' to a postgresql:// URL")
        if cfg.mqtt_topic.count("+") != 1:
            raise ConfigError(f"config key 'mqtt_topic': {cfg.mqtt_topic!r} needs exactly one '+' level (the sensor id)")
    if cfg.alert_webhook_url and not cfg.alert_webhook_url.startswith(("http://", "https://")):
        raise ConfigError(f"config key 'alert_webhook_url': {cfg.alert_webhook_url!r} must start with http:// or https://")
    if cfg.mqtt_alert_url and not cfg.mqtt_alert_url.startswith(("mqtt://", "tcp://")):
        raise ConfigError(f"config key 'mqtt_alert_url': {cfg.mqtt_alert_url!r} must look like mqtt://host:port")
    if cfg.mqtt_alert_topic:
        if not (cfg.mqtt_alert_url or cfg.mqtt_url):
            raise ConfigError("config key 'mqtt_alert_topic' needs a broker: set 'mqtt_alert_url' (or 'mqtt_url')")
        if any(c in cfg.mqtt_alert_topic for c in "+#"):
            raise ConfigError(f"config key 'mqtt_alert_topic': {cfg.mqtt_alert_topic!r} is where alerts are "
                              "published: no '+' or '#' wildcards")
    try:
        alert_overrides(cfg)
    except ValueError as e:
        raise ConfigError(f"config keys 'fall_*': {e}") from None
    return cfg


def alert_overrides(cfg: ServeConfig) -> AlertOverrides:
    """The config's ``fall_*`` keys as overrides of the checkpoint's alert rule."""
    return AlertOverrides(
        fall_class=cfg.fall_class, threshold=cfg.fall_threshold, min_seconds=cfg.fall_alert_seconds,
        max_gap_seconds=cfg.fall_alert_gap_seconds, cooldown_seconds=cfg.fall_alert_cooldown_seconds,
        bed_threshold=cfg.fall_bed_threshold,
    )


def ingest_limits(cfg: ServeConfig) -> IngestLimits:
    """What one ingest message may carry, for :mod:`~thermal_action.serve.protocol`."""
    return IngestLimits(max_frames=cfg.max_frames_per_message, max_boxes=cfg.max_boxes_per_frame)


def load_serve_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ServeConfig:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides."""
    return check_serve_config(load_config(path, overrides, cls=ServeConfig))
