"""Lightning DDP with two CPU processes (gloo): both ranks end with the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(synth_root, out, *overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, str(WORKER), str(synth_root), str(out), *overrides],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_two_process_ddp_ranks_hold_the_same_weights(tmp_path, synth_root):
    _run(synth_root, tmp_path, "data.class_balanced_sampler=true")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["global_step"] == r1["global_step"] == 2
    # Each rank trained on its own clips: equal weights come from the gradient all-reduce.
    assert len(r0["image_ids"]) == len(r1["image_ids"]) == 4 and r0["image_ids"] != r1["image_ids"]
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    # The run directory is written once, by rank 0, and its checkpoint holds the same weights.
    run = tmp_path / "run"
    lines = (run / "val_summary.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["step"] == 2
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for k, v in r0["state"].items():
        assert torch.equal(ckpt["model." + k], v), k
