"""``thermal-action label DATA_DIR --suggest N``: the keyframes to label next, on the command line.

Only ``--suggest`` lives here; the labelling page (``thermal-action label DATA_DIR`` without
``--suggest``) adds its own options to this parser.
"""

from __future__ import annotations

import argparse

#: ``thermal_action.active.STRATEGIES``, spelled out so ``--help`` imports no numpy or torch
#: (a test holds them equal).
STRATEGIES = ("queue", "random", "rarest")


def _cmd_label(args: argparse.Namespace) -> int:
    if args.suggest is None:
        raise ValueError("pass --suggest N: the labelling page is not part of this build")
    from thermal_action.active import suggest_cli

    return suggest_cli(args)


def register(subparsers) -> None:
    """Adds ``label`` (with ``--suggest``) to the ``thermal-action`` subcommands."""
    p = subparsers.add_parser(
        "label", help="what to label next (--suggest N)",
        description="Rank the unlabelled keyframes of a dataset folder or a folder of recordings (every 6th frame, "
                    "people from the built-in detector and tracker) by how much a label there should help the model. "
                    "Example: thermal-action label /data/rooms --suggest 20 --checkpoint runs/x/checkpoints/best.ckpt",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="a dataset folder (frames/, annotations/) or a folder of .h5 "
                   "recordings; keyframes in its annotations/*.json count as labelled")
    p.add_argument("--suggest", type=int, metavar="N", help="write the N keyframes to label next")
    p.add_argument("--checkpoint", help="the model whose scores rank the keyframes (without one: --strategy random)")
    p.add_argument("--out", help="where to write them: .csv, else JSON (default DATA_DIR/suggestions.json)")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="queue: the acquisition score (default with a checkpoint); rarest: the rarest predicted "
                        "class first; random (default without one)")
    p.add_argument("--every", type=int, default=6, help="frames between candidate keyframes (default 6)")
    p.add_argument("--random-share", type=float, default=0.1,
                   help="share of the list drawn at random so the ranking can be audited (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seeds the random picks")
    p.add_argument("--device", default="cpu", help="where the model runs (cpu, cuda)")
    p.set_defaults(func=_cmd_label)
