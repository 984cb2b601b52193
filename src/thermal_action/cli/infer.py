"""``thermal-action predict``, ``render`` and ``export``: parse, call one library function, print."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _alert_overrides(args: argparse.Namespace):
    """The ``--fall-*`` options as :class:`AlertOverrides` (checked here, before any model loads)."""
    from thermal_action.alert_rule import AlertOverrides

    return AlertOverrides(
        fall_class=args.fall_class, threshold=args.fall_threshold, min_seconds=args.fall_alert_seconds,
        max_gap_seconds=args.fall_alert_gap_seconds, cooldown_seconds=args.fall_alert_cooldown_seconds,
        bed_threshold=args.fall_bed_threshold,
    )


def _add_alert_options(p: argparse.ArgumentParser, base: str) -> None:
    """``--fall-*``: overrides of the fall alert rule; every default is ``base``'s."""
    p.add_argument("--fall-class", help=f"the class whose score raises fall alerts (default: {base})")
    p.add_argument("--fall-threshold", type=float,
                   help=f"fall score in (0, 1] that counts as fallen (default: {base}; a checkpoint's is the "
                        "threshold train calibrated on validation data)")
    p.add_argument("--fall-alert-seconds", type=float,
                   help=f"how long the score must stay at or above the threshold before an alert (default: {base})")
    p.add_argument("--fall-alert-gap-seconds", type=float,
                   help=f"seconds without a prediction of the person that do not break a run (default: {base})")
    p.add_argument("--fall-alert-cooldown-seconds", type=float,
                   help=f"a new run of the person this soon after an alert continues it (default: {base})")
    p.add_argument("--fall-bed-threshold", type=float,
                   help=f"stricter threshold for a person mostly on a bed/couch zone (default: {base})")


def _cmd_predict(args: argparse.Namespace) -> int:
    from thermal_action.inference.recordings import predict_recordings

    rule = _alert_overrides(args)
    run = predict_recordings(
        args.checkpoint, args.recordings, args.out, step=args.step, boxes=args.boxes, detections=args.detections,
        annotations=args.annotations, backend=args.backend, device=args.device, batch_size=args.batch_size,
        alert_rule=rule, fps=args.fps, allow_frame_size=args.allow_frame_size, rooms=args.rooms,
    )
    print(json.dumps(run.summary(), indent=2))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from thermal_action.inference.render import render_recording

    rule = _alert_overrides(args)
    result = render_recording(
        args.recording, args.out, gif=args.gif, predictions=args.predictions, annotations=args.annotations,
        scale=args.scale, fps=args.fps, alert_rule=rule, start=args.start, stop=args.stop, gif_scale=args.gif_scale,
        rooms=args.rooms,
    )
    print(json.dumps(result.summary(), indent=2))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from thermal_action.inference.export import export_onnx

    if args.format != "onnx":
        raise ValueError(f"unknown export format {args.format!r}; only 'onnx' is supported")
    report = export_onnx(args.checkpoint, args.output, opset=args.opset, exporter=args.exporter,
                         allow_no_memory=args.allow_no_memory)
    print(report.format_text())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the inference subcommands to the ``thermal-action`` parser (defaults: ``PREDICTION``)."""
    from thermal_action.structures import PREDICTION

    p = subparsers.add_parser("predict", help="score every person of new recordings; JSON + CSV + fall alerts")
    p.add_argument("recordings", nargs="+", help=".h5 recordings (or directories of them)")
    p.add_argument("--checkpoint", required=True, help="a training .ckpt or an exported .onnx")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--step", type=int, default=PREDICTION.step,
                   help="frames between predictions (default %(default)s: about once a second)")
    p.add_argument("--boxes", choices=["auto", "annotations", "detections", "detector"], default="auto",
                   help="person boxes: auto = annotations, else detections, else the built-in detector")
    p.add_argument("--detections", help="person detections: JSON / JSON lines, or a directory of YOLO <frame>.txt")
    p.add_argument("--annotations", help="annotations JSON: predict at its keyframes with its boxes, tracks and "
                   "furniture (context_objects)")
    p.add_argument("--rooms", metavar="PATH", help="room layout file (rooms.json: sensor id or MAC -> bed/couch/chair "
                   "zones) for keyframes without furniture of their own; without it (and without annotated "
                   "furniture) a model that reads the room predicts without one (summary: predictions_without_room)")
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    p.add_argument("--device", default="cpu", help="PyTorch device (torch backend)")
    p.add_argument("--batch-size", type=int, help="clips per forward pass (default: 4 on CPU, 32 on GPU)")
    _add_alert_options(p, "the checkpoint's alert rule")
    p.add_argument("--fps", type=float, default=PREDICTION.fps, help="frames per second, to turn frames into seconds")
    p.add_argument("--allow-frame-size", action="store_true",
                   help="predict on recordings of another frame size than the model was trained on (their "
                        "dropped packets are filled, not realigned: the realignment knows only 40x60 frames)")
    p.set_defaults(func=_cmd_predict)

    p = subparsers.add_parser("render", help="MP4 (+ GIF) of a recording with predictions and fall alerts")
    p.add_argument("recording", help="an .h5 recording")
    p.add_argument("--predictions", help="predictions.json from 'thermal-action predict'")
    p.add_argument("--annotations", help="annotations JSON (ground-truth boxes drawn in grey)")
    p.add_argument("--rooms", type=Path,
                   help="room layout file (rooms.json): furniture drawn under the boxes where the annotations "
                        "have none")
    p.add_argument("--out", required=True, type=Path, help="the .mp4 to write")
    p.add_argument("--gif", type=Path, help="also write this GIF")
    p.add_argument("--gif-scale", type=int, help="GIF upscaling (default: --scale)")
    p.add_argument("--scale", type=int, default=8, help="integer upscaling of the 40x60 frames")
    p.add_argument("--fps", type=float, default=PREDICTION.fps)
    p.add_argument("--start", type=int, default=0, help="first frame")
    p.add_argument("--stop", type=int, help="frame after the last one (default: the end)")
    _add_alert_options(p, "the rule in run.json beside the predictions, else the default rule")
    p.set_defaults(func=_cmd_render)

    p = subparsers.add_parser("export", help="export a checkpoint to ONNX (dynamic number of boxes)")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--exporter", choices=["auto", "legacy", "dynamo"], default="auto",
                   help="auto: the legacy TorchScript exporter, then torch.export (dynamo)")
    p.add_argument("--allow-no-memory", action="store_true",
                   help="export an interaction model without its feature-bank memory")
    p.set_defaults(func=_cmd_export)
