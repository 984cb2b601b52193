"""``thermal-action label``: the labelling page (``thermal_action.label``), or with ``--suggest N``
the keyframes to label next on the command line (``thermal_action.active``): parse, call one
library function."""

from __future__ import annotations

import argparse
from pathlib import Path

#: ``thermal_action.active.STRATEGIES``, spelled out so ``--help`` imports no numpy or torch
#: (a test holds them equal).
STRATEGIES = ("queue", "random", "rarest")


def _cmd_label(args: argparse.Namespace) -> int:
    if args.suggest is not None:
        from thermal_action.active import suggest_cli

        return suggest_cli(argparse.Namespace(
            data_dir=str(args.data_dir), suggest=args.suggest,
            checkpoint=str(args.checkpoint) if args.checkpoint is not None else None,
            out=str(args.suggest_out) if args.suggest_out is not None else None, strategy=args.strategy,
            every=args.every, seed=args.seed, random_share=args.random_share, device=args.device))
    from thermal_action.label.server import run_label
    from thermal_action.label.session import LabelSession

    session = LabelSession(args.data_dir, out_dir=args.out, checkpoint=args.checkpoint, every=args.every,
                           annotator=args.annotator)
    run_label(session, host=args.host, port=args.port, token=args.token)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``label`` to the ``thermal-action`` parser."""
    p = subparsers.add_parser(
        "label", help="label recordings in a local web page (or --suggest N: what to label next)",
        description="Serves a labelling page over a dataset folder (frames/*.h5) or a folder of .h5 recordings: "
                    "keyframes every --every frames with the built-in detector's people and tracks (and the "
                    "model's scores with --checkpoint). Every edit is saved before the page says so; the labels "
                    "are written to OUT as raw_annotations/, annotations/train.json + val.json and rooms.json. "
                    "With --suggest N it serves nothing and writes the N unlabelled keyframes a label should help "
                    "most (example: thermal-action label /data/rooms --suggest 20 --checkpoint best.ckpt).")
    p.add_argument("data_dir", type=Path, help="a dataset folder (frames/*.h5) or a folder of .h5 recordings; "
                   "keyframes in its annotations/*.json count as labelled")
    p.add_argument("--checkpoint", type=Path, help="a .ckpt or .onnx: the model's action scores beside each person "
                   "(with --suggest: the scores that rank the keyframes; without one: --strategy random)")
    p.add_argument("--out", type=Path, help="where the labels go (default: DATA_DIR/labels)")
    p.add_argument("--every", type=int, default=6, help="frames between keyframes (default %(default)s: ~1 s)")
    p.add_argument("--annotator", help="your name on the labels (default: the login name; the page can change it)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=8766, help="port (default %(default)s; 0: any free port)")
    p.add_argument("--token", help="the page's access token (default $THERMAL_ACTION_TOKEN, else kept in OUT/token)")
    q = p.add_argument_group("what to label next (--suggest)")
    q.add_argument("--suggest", type=int, metavar="N", help="write the N keyframes to label next instead of serving")
    q.add_argument("--suggest-out", type=Path, metavar="FILE",
                   help="where to write them: .csv, else JSON (default DATA_DIR/suggestions.json)")
    q.add_argument("--strategy", choices=STRATEGIES,
                   help="queue: the acquisition score (default with a checkpoint); rarest: the rarest predicted "
                        "class first; random (default without one)")
    q.add_argument("--random-share", type=float, default=0.1,
                   help="share of the list drawn at random so the ranking can be audited (default 0.1)")
    q.add_argument("--seed", type=int, default=0, help="seeds the random picks")
    q.add_argument("--device", default="cpu", help="where the model runs (cpu, cuda)")
    p.set_defaults(func=_cmd_label)
