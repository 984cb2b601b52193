"""``thermal-action train | evaluate | pretrain | demo``: parse, then call one library function each.

Registered into the main parser by :func:`thermal_action.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from thermal_action import configs

#: ``--rooms`` of train, evaluate and predict.
ROOMS_HELP = ("room layout file (rooms.json: sensor id or MAC -> bed/couch/chair zones) for keyframes whose "
              "annotations list no furniture; same as data.rooms=PATH")


def _rooms_override(args: argparse.Namespace) -> list[str]:
    """``--rooms PATH`` as the ``data.rooms`` override, made absolute (a path given on the
    command line is relative to where the command runs, not to ``data.root``)."""
    return [f"data.rooms={Path(args.rooms).resolve()}"] if args.rooms else []


def _cmd_train(args: argparse.Namespace) -> int:
    from thermal_action.config import load_config
    from thermal_action.training.train import choose_run_dir, train

    out = choose_run_dir(args.out, Path(args.config).stem if args.config else "cpu_default", args.resume)
    config = args.config
    if config is None and args.resume:
        config = Path(out) / "config.yaml"
    elif config is None:
        config = configs.DEFAULT
        print(f"no --config: training the CPU default (--config {config})")
    cfg = load_config(config, [*args.overrides, *_rooms_override(args)])
    result = train(cfg, out, resume=args.resume)
    if result.global_rank != 0:
        return 0
    print(result.summary())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from thermal_action.evaluation.io import format_metrics_table
    from thermal_action.training.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        args.ann,
        args.out,
        detections=args.detections,
        overrides=[*args.overrides, *_rooms_override(args)],
        device=args.device,
    )
    if args.json:
        print(json.dumps({k: metrics[k] for k in ("frame_map", "top1_accuracy", "macro_f1", "fall_precision",
                                                    "fall_recall", "fall_ap", "fall_boxes", "evaluated")}, indent=2))
    else:
        print(format_metrics_table(metrics))
        plots = ", confusion_matrix.png, pr_curves.png, fall_pr.png" if metrics["evaluated"].get("plots", True) else ""
        print(f"\nwritten to {args.out}: metrics.json, predictions.json{plots}")
    if args.events:
        from thermal_action.inference.events import evaluate_events

        ann = Path(args.ann) if Path(args.ann).is_absolute() else Path(args.data) / args.ann
        report = evaluate_events(args.checkpoint, args.data, ann, Path(args.out) / "events", slack_s=args.event_slack,
                                 device=args.device)
        if args.json:
            print(json.dumps({"events": report["pooled"]}, indent=2))
        else:
            print(f"\nfall events (built-in detector and tracker, alert rule {report['alert_rule']}):")
            print(report["table"])
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from thermal_action.config import load_config
    from thermal_action.training.pretrain import pretrain

    # "--recordings DIR key=value": argparse gives the overrides after the paths to --recordings.
    recordings = [r for r in args.recordings or [] if "=" not in r or Path(r).exists()]
    overrides = [r for r in args.recordings or [] if r not in recordings] + list(args.overrides)
    cfg = load_config(args.config or configs.DEFAULT, overrides)
    if not recordings:
        if not cfg.data.root:
            raise ValueError("give --recordings FILE_OR_DIR ... or data.root=DATASET (its frames/ are used)")
        recordings = [str(Path(cfg.data.root) / cfg.data.frames_dir)]
    print(pretrain(cfg, recordings, args.out).format_text())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from thermal_action.demo import run_demo

    result = run_demo(args.out, minutes=args.minutes, seed=args.seed)
    print(result.format_text())
    return 0


def _config_help(default: str) -> str:
    """``--config``'s help: a shipped config by name (listed) or a YAML file."""
    return f"a shipped config by name ({', '.join(configs.names())}) or a YAML file; default {default}"


def register(subparsers) -> None:
    """Adds ``train``, ``evaluate`` and ``demo`` to the ``thermal-action`` subcommands."""
    p = subparsers.add_parser(
        "train",
        help="train a detector (Lightning; DDP over trainer.devices x trainer.num_nodes)",
        description="Train on a dataset in the thermal format. Example: thermal-action train "
        "--config cpu_default data.root=/data/rooms optim.epochs=20",
    )
    p.add_argument("--config", help=_config_help(f"{configs.DEFAULT}, with --resume RUN_DIR/config.yaml"))
    p.add_argument("--out", help="run directory (default runs/<config>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.ckpt")
    p.add_argument("--rooms", metavar="PATH", help=ROOMS_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.root=/data optim.lr=3e-4")
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint on an annotated set (frame-mAP, top-1, macro-F1, fall P/R)",
        description="Writes metrics.json, predictions.json and plots to --out. By default the annotated "
        "boxes are classified (AVA's ground-truth-box setting); --detections classifies a detector's boxes.",
    )
    p.add_argument("--checkpoint", required=True, help="a .ckpt from thermal-action train")
    p.add_argument("--data", required=True, help="dataset directory (frames/ and annotations/)")
    p.add_argument("--ann", default="annotations/val.json", help="annotation file, relative to --data (default %(default)s)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--detections", help="detections file: JSON list, JSON lines or {\"detections\": [...]} of "
                   "{image_id, bbox [cx,cy,w,h] normalized, score} (evaluation/detections.py)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    p.add_argument("--rooms", metavar="PATH", help=ROOMS_HELP + " (default: the checkpoint's data.rooms, if found)")
    p.add_argument("--json", action="store_true", help="print the headline numbers as JSON")
    p.add_argument("--events", action="store_true",
                   help="also run the bare recordings through the built-in detector, tracker, model and the "
                   "checkpoint's alert rule, and report the annotated fall events found, the delay to each alert "
                   "and the false alerts per sensor-hour (OUT/events/events.json, events.md)")
    p.add_argument("--event-slack", type=float, default=6.0,
                   help="seconds around a fall event within which an alert finds it (default %(default)s)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="data.* / eval.* overrides, e.g. eval.iou_threshold=0.3")
    p.set_defaults(func=_cmd_evaluate)

    p = subparsers.add_parser(
        "pretrain",
        help="self-supervised pretraining on unlabelled recordings (contrastive, person tubes)",
        description=f"Pretrains the model of --config (default {configs.DEFAULT}) on the people the "
        "built-in detector finds in unlabelled recordings; fine-tune with thermal-action train ... "
        "model.pretrained=OUT/pretrained.safetensors. Example: thermal-action pretrain --out runs/pre "
        "--recordings /data/unlabelled pretrain.epochs=6",
    )
    p.add_argument("--config", help="the config of the model to pretrain: " + _config_help(configs.DEFAULT))
    p.add_argument("--out", required=True, help="output directory (pretrained.safetensors, config.yaml, log)")
    p.add_argument("--recordings", nargs="+", metavar="PATH",
                   help=".h5 files or folders of them (default: DATA_ROOT/frames from data.root=...)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. pretrain.epochs=10")
    p.set_defaults(func=_cmd_pretrain)

    p = subparsers.add_parser(
        "demo",
        help="synthetic data -> train the CPU default -> evaluate on held-out recordings -> picture",
    )
    p.add_argument("--out", default="thermal_demo", help="output directory (default %(default)s)")
    p.add_argument("--minutes", type=float, default=6.0, help="training time budget in minutes (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
