"""``thermal-action label``: the labelling page (``thermal_action.label``): parse, call one
library function."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_label(args: argparse.Namespace) -> int:
    from thermal_action.label.server import run_label
    from thermal_action.label.session import LabelSession

    session = LabelSession(args.data_dir, out_dir=args.out, checkpoint=args.checkpoint, every=args.every,
                           annotator=args.annotator)
    run_label(session, host=args.host, port=args.port, token=args.token)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``label`` to the ``thermal-action`` parser."""
    p = subparsers.add_parser(
        "label", help="label recordings in a local web page: pre-annotated people, actions held along tracks",
        description="Serves a labelling page over a dataset folder (frames/*.h5) or a folder of .h5 recordings: "
                    "keyframes every --every frames with the built-in detector's people and tracks (and the "
                    "model's scores with --checkpoint). Every edit is saved before the page says so; the labels "
                    "are written to OUT as raw_annotations/, annotations/train.json + val.json and rooms.json.")
    p.add_argument("data_dir", type=Path, help="a dataset folder (frames/*.h5) or a folder of .h5 recordings")
    p.add_argument("--checkpoint", type=Path, help="a .ckpt or .onnx: the model's action scores beside each person")
    p.add_argument("--out", type=Path, help="where the labels go (default: DATA_DIR/labels)")
    p.add_argument("--every", type=int, default=6, help="frames between keyframes (default %(default)s: ~1 s)")
    p.add_argument("--annotator", help="your name on the labels (default: the login name; the page can change it)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=8766, help="port (default %(default)s; 0: any free port)")
    p.add_argument("--token", help="the page's access token (default $THERMAL_ACTION_TOKEN, else kept in OUT/token)")
    p.set_defaults(func=_cmd_label)
