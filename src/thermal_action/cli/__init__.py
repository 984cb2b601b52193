"""The ``thermal-action`` command line.

Each subcommand parses its arguments and calls one library function that a Python
user could call the same way; imports are lazy so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

#: Set to 1 (or pass ``--debug``) to see the traceback of an error instead of one line.
DEBUG_ENV = "THERMAL_ACTION_DEBUG"

#: Top-level module of an optional dependency -> the extra of pyproject.toml that installs it:
#: a subcommand that needs one that is missing says which extra to install.
EXTRAS = {
    "lightning": "train", "tensorboard": "train", "matplotlib": "train",
    "fastapi": "serve", "uvicorn": "serve", "websockets": "serve", "paho": "serve",
    "onnx": "export", "onnxruntime": "export", "onnxscript": "export",
    "imageio_ffmpeg": "video",
    "psycopg": "cluster", "pika": "cluster",
}


def _cmd_synth(args: argparse.Namespace) -> int:
    if args.day is not None:
        from thermal_action.data.synth.day import DayConfig, generate_day

        summary = generate_day(args.out_dir, DayConfig(hours=args.day, start_hour=args.start_hour, seed=args.seed,
                                                       keyframe_seconds=args.keyframe_seconds))
    else:
        from thermal_action.data.synth.config import SynthConfig
        from thermal_action.data.synth.write import generate_dataset

        summary = generate_dataset(
            args.out_dir,
            SynthConfig(
                num_recordings=args.recordings,
                frames_per_recording=args.frames,
                seed=args.seed,
                val_recordings=args.val_recordings,
            ),
            overwrite=args.force,
        )
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from thermal_action.data.validate import validate_dataset

    report = validate_dataset(
        args.dataset_dir,
        ann_files=args.ann or None,
        # Written to the working directory by default: a dataset folder may be read-only or shared.
        contact_sheet=None if args.no_contact_sheet
        else (args.contact_sheet or Path.cwd() / f"{Path(args.dataset_dir).resolve().name}_contact_sheet.png"),
        rooms=args.rooms,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format_text())
    return 1 if (args.strict and report.problems) else 0


def _cmd_config(args: argparse.Namespace) -> int:
    from thermal_action.config import Config, describe_config, load_config

    if args.which == "serve":
        from thermal_action.serve.config import ServeConfig as cls
    else:
        cls = Config
    values = None if args.config is None else load_config(args.config, cls=cls)
    rows = describe_config(cls, values=values)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        shown = r.get("value", r["default"])
        default = f"  (default {r['default']})" if shown != r["default"] else ""
        allowed = f"  (allowed {r['range']})" if r["range"] else ""
        print(f"{r['key']:<{width}}  {shown}{default}{allowed}\n{'':<{width}}  {r['meaning']}")
    return 0


def _cmd_rooms_extract(args: argparse.Namespace) -> int:
    from thermal_action.data.room_files import extract_rooms

    summary = extract_rooms(args.annotations, args.out, tolerance=args.tolerance, min_keyframes=args.min_keyframes,
                            key=args.key)
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


def _cmd_rooms_show(args: argparse.Namespace) -> int:
    from thermal_action.data.room_files import show_rooms
    from thermal_action.data.rooms import read_rooms

    print(json.dumps(read_rooms(args.rooms).to_dict(), indent=2) if args.json else show_rooms(args.rooms))
    return 0


def _cmd_convert_annotations(args: argparse.Namespace) -> int:
    from thermal_action.data.convert import convert_annotations

    summary = convert_annotations(
        raw_dir=args.raw_dir,
        frames_dir=args.frames_dir,
        out_dir=args.out_dir,
        split=args.split,
        val_fraction=args.val_fraction,
        seed=args.seed,
        tolerance_ms=args.tolerance_ms,
        min_context_frames=args.min_context_frames,
        overwrite=args.force,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_convert_checkpoint(args: argparse.Namespace) -> int:
    from thermal_action.models.convert import convert_checkpoint

    report = convert_checkpoint(args.input, args.output, variant=args.variant, num_classes=args.num_classes,
                                interaction=args.interaction)
    print(report.format_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thermal-action",
        description="Spatio-temporal action detection on low-resolution thermal recordings.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an error (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic dataset in the thermal dataset format")
    p.add_argument("out_dir")
    p.add_argument("--recordings", type=int, default=8, help="number of recordings (sensor files)")
    p.add_argument("--frames", type=int, default=400, help="frames per recording")
    p.add_argument("--val-recordings", type=int, default=2, help="whole recordings held out for val.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--day", type=float, metavar="HOURS",
                   help="instead: one fall-free recording of one resident this many hours long (alert benchmark)")
    p.add_argument("--start-hour", type=float, default=21.0, help="--day: clock time of the first frame (h)")
    p.add_argument("--keyframe-seconds", type=float, default=10.0, help="--day: seconds between annotated keyframes")
    p.add_argument("--force", action="store_true",
                   help="replace the dataset files already in OUT_DIR (sensor_info.json, train.json, val.json...)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("validate", help="check a dataset and print a summary")
    p.add_argument("dataset_dir")
    p.add_argument("--ann", action="append", help="annotation file(s) to check (default: annotations/*.json)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--contact-sheet", type=Path, help="PNG path (default ./<dataset name>_contact_sheet.png)")
    p.add_argument("--no-contact-sheet", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 1 when problems were found")
    p.add_argument("--rooms", type=Path,
                   help="room layout file to check with the dataset (default: <dataset>/rooms.json if present)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("rooms", help="room layout files (rooms.json): extract one from annotations, show one")
    rooms_sub = p.add_subparsers(dest="rooms_command", required=True)
    r = rooms_sub.add_parser("extract", help="a rooms.json from annotation files' furniture boxes")
    r.add_argument("annotations", nargs="+",
                   help="annotation files (train.json... with context_objects) or raw <sensor>_annotation.json")
    r.add_argument("--out", required=True, type=Path, help="the rooms.json to write")
    r.add_argument("--tolerance", type=float, default=0.06,
                   help="a corner moving less than this share of the frame is the same furniture (default %(default)s)")
    r.add_argument("--min-keyframes", type=int, default=2,
                   help="furniture must stay this many keyframes to count as a new layout (default %(default)s)")
    r.add_argument("--key", choices=["auto", "mac", "sensor"], default="auto",
                   help="key layouts by MAC address (auto: when known) or by sensor id")
    r.set_defaults(func=_cmd_rooms_extract)
    r = rooms_sub.add_parser("show", help="check a rooms.json and print its sensors, layouts and zones")
    r.add_argument("rooms", type=Path)
    r.add_argument("--json", action="store_true", help="print the parsed file as JSON")
    r.set_defaults(func=_cmd_rooms_show)

    p = sub.add_parser("convert-annotations", help="raw labelling-tool JSONL -> train.json / val.json")
    p.add_argument("raw_dir", help="directory of <sensor>_annotation.json files")
    p.add_argument("frames_dir", help="directory of <sensor>.h5 files")
    p.add_argument("out_dir", help="where train.json, val.json and class_mapping.json go")
    p.add_argument("--split", choices=["recording", "random"], default="recording")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tolerance-ms", type=float, default=50.0)
    p.add_argument("--min-context-frames", type=int, default=0,
                   help="drop keyframes with fewer frames than this on either side (0 keeps all; clips are padded)")
    p.add_argument("--force", action="store_true",
                   help="replace train.json, val.json and class_mapping.json already in OUT_DIR")
    p.set_defaults(func=_cmd_convert_annotations)

    p = sub.add_parser("convert-checkpoint", help="map a published SlowFast checkpoint onto our model")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--variant", help="model variant (default: the only one in VARIANTS that reproduces the file)")
    p.add_argument("--num-classes", type=int, default=14)
    p.add_argument("--interaction", default="none")
    p.set_defaults(func=_cmd_convert_checkpoint)

    p = sub.add_parser("config", help="list every config key with its default, range and meaning")
    p.add_argument("which", choices=("train", "serve"), help="train: train/evaluate/predict's config; serve: serve's")
    p.add_argument("--config", help="show this config's values (a shipped config by name, e.g. cpu_default, or a "
                   "YAML file), with the defaults they change")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=_cmd_config)

    # Training, evaluation, demo and inference subcommands live beside the code they call.
    from thermal_action.cli import infer as inference_cli
    from thermal_action.cli import label as label_cli
    from thermal_action.cli import serve as serve_cli
    from thermal_action.cli import train as training_cli

    training_cli.register(sub)
    inference_cli.register(sub)
    label_cli.register(sub)
    serve_cli.register(sub)
    for p in [*sub.choices.values(), *rooms_sub.choices.values()]:
        # Also after the subcommand (``thermal-action train --debug ...``, ``rooms show --debug``).
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help=f"show the traceback of an error (or set {DEBUG_ENV}=1)")
    return parser


def _debug_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").strip().lower() in (
        "1", "true", "yes", "on")


def _one_line(e: BaseException) -> str:
    """The error as one line: library errors already name the file and record."""
    text = " ".join(str(e).split())
    missing = (e.name or "").split(".")[0] if isinstance(e, ModuleNotFoundError) else ""
    if missing in EXTRAS:
        return f"needs {missing}, which is not installed: pip install 'thermal-action[{EXTRAS[missing]}]'"
    if missing == "torch":  # an ONNX Runtime install without PyTorch (README, "Install")
        return ("needs torch, which is not installed: this install runs exported models only "
                "(an .onnx from 'thermal-action export' with --backend onnx)")
    if isinstance(e, KeyError) and len(e.args) == 1:
        text = str(e.args[0])
    if isinstance(e, (ValueError, OSError, KeyError)):
        return text or type(e).__name__
    # Anything else is not one of our messages: say what kind it is and how to see more.
    return f"{type(e).__name__}: {text} (rerun with --debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except Exception as e:  # noqa: BLE001 - every error becomes one line and exit code 2
        # Library errors carry the file and record; show them without a traceback.
        if _debug_requested(args):
            raise
        print(f"thermal-action {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
