"""``thermal-action serve``: the live service (``thermal_action.serve``)."""

from __future__ import annotations

import argparse


def _cmd_serve(args: argparse.Namespace) -> int:
    from thermal_action.serve.config import load_serve_config
    from thermal_action.serve.service import run_service

    cfg = load_serve_config(args.config, args.overrides)
    run_service(cfg, args.checkpoint)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="live service: sensors over WebSocket/HTTP/MQTT, fall alerts in SQLite, a web dashboard")
    p.add_argument("--checkpoint", required=True, help="a .ckpt from train, or an .onnx from export")
    p.add_argument("--config", help="YAML file of service settings (keys: the README's 'Live service' table)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="service settings, e.g. port=8765 workers=2 mqtt_url=mqtt://127.0.0.1:1883")
    p.set_defaults(func=_cmd_serve)
