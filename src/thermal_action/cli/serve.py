"""``thermal-action serve`` (the live service, ``thermal_action.serve``) and ``replay``: parse, call
one library function, print."""

from __future__ import annotations

import argparse
import json
import os
import sys

#: The token replay sends when ``--token`` is not given.
TOKEN_ENV = "THERMAL_ACTION_TOKEN"


def _cmd_serve(args: argparse.Namespace) -> int:
    from thermal_action.serve.config import load_serve_config
    from thermal_action.serve.service import run_service

    overrides = list(args.overrides) + ([f"rooms={args.rooms}"] if args.rooms else [])
    cfg = load_serve_config(args.config, overrides)
    run_service(cfg, args.checkpoint)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Runs :func:`thermal_action.serve.replay.player.replay` and prints its summary; 1 when nothing arrived."""
    from thermal_action.serve.replay.player import replay

    def progress(summary) -> None:
        t = summary.totals()
        print(f"[{summary.seconds:6.1f} s] {t['frames_sent']} frames sent ({t['frames_per_second']}/s), "
              f"{t['frames_failed']} failed, {t['frames_late']} late, {t['server_errors']} server errors",
              file=sys.stderr, flush=True)

    summary = replay(
        args.recordings, args.to, token=args.token if args.token is not None else os.environ.get(TOKEN_ENV, ""),
        speed=args.speed, loop=args.loop, sensors=args.sensors, topic=args.topic, duration=args.duration,
        stagger_seconds=args.stagger, late_ms=args.late_ms, qos=args.qos,
        progress=progress if args.progress else None, progress_every=args.progress_every,
    )
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.format_text(), flush=True)
    stopped = [s for s in summary.sensors if s.fatal]
    return 1 if stopped or summary.totals()["frames_sent"] == 0 else 0


def add_replay_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``replay`` to the ``thermal-action`` parser."""
    from thermal_action.serve.replay.player import DEFAULT_TOPIC

    p = subparsers.add_parser(
        "replay", help="send recordings as live sensors to a running serve (WebSocket, HTTP or MQTT)",
        description="Sends .h5 recordings as live sensors at their recorded frame times (bursts included), "
                    "frames as stored (dropped packets included), timestamps shifted to now.")
    p.add_argument("recordings", nargs="+", help=".h5 recordings (or directories of them)")
    p.add_argument("--to", required=True,
                   help="ws://HOST:PORT (WebSocket), http://HOST:PORT (HTTP batches) or mqtt://HOST:PORT (broker)")
    p.add_argument("--token", help=f"the service's access token (default ${TOKEN_ENV}); not used for MQTT")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed (default %(default)s: real time)")
    p.add_argument("--loop", action="store_true", help="repeat the recordings (until --duration or Ctrl-C)")
    p.add_argument("--sensors", type=int,
                   help="replay as N sensors (default: one per recording; more cycles them as <stem>-<k>)")
    p.add_argument("--topic", default=DEFAULT_TOPIC, help="MQTT topic, {sensor} = the sensor id (default %(default)s)")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=0, help="MQTT quality of service")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--stagger", type=float, default=1.0,
                   help="spread the sensors' starts over this many seconds (default %(default)s)")
    p.add_argument("--late-ms", type=float, default=100.0,
                   help="a frame sent this much behind its schedule counts as late (default %(default)s)")
    p.add_argument("--progress", action="store_true",
                   help="print a progress line to stderr every --progress-every seconds (the global -v "
                        "is debug logging)")
    p.add_argument("--progress-every", type=float, default=5.0, help="seconds between progress lines")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_replay)


def add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``serve`` to the ``thermal-action`` parser."""
    p = subparsers.add_parser(
        "serve", help="live service: sensors over WebSocket/HTTP/MQTT, fall alerts in SQLite, a web dashboard")
    p.add_argument("--checkpoint", required=True, help="a .ckpt from train, or an .onnx from export")
    p.add_argument("--config", help="YAML file of service settings (keys: the table in docs/serve.md)")
    p.add_argument("--rooms", help="room layout file (rooms.json): each sensor's furniture at start; zones set "
                                   "through the API (PUT /api/sensors/{id}/zones) win (same as rooms=PATH)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="service settings, e.g. port=8765 workers=2 mqtt_url=mqtt://127.0.0.1:1883")
    p.set_defaults(func=_cmd_serve)


def _cmd_feedback_export(args: argparse.Namespace) -> int:
    from thermal_action.serve.feedback import export_feedback

    summary = export_feedback(args.data_dir, args.out, overwrite=args.overwrite)
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


def add_feedback_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``feedback export`` to the ``thermal-action`` parser."""
    p = subparsers.add_parser("feedback", help="operators' answers on alerts: export them as training data")
    sub = p.add_subparsers(dest="feedback_command", required=True)
    e = sub.add_parser(
        "export", help="the clips of alerts with feedback as a dataset (frames/*.h5, annotations/train.json)",
        description="Writes the clip of every alert with a usable answer (real fall, or a false alarm in bed, "
                    "sitting or kneeling) as a recording in the dataset format, the fallen person's box "
                    "labelled about once a second; the service may keep running.")
    e.add_argument("data_dir", help="the data_dir of a thermal-action serve (serve.db, clips/)")
    e.add_argument("--out", required=True, help="the dataset directory to write")
    e.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    e.set_defaults(func=_cmd_feedback_export)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the service's subcommands (``serve``, ``replay``, ``feedback``) to the ``thermal-action`` parser."""
    add_serve_parser(subparsers)
    add_replay_parser(subparsers)
    add_feedback_parser(subparsers)
