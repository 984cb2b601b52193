"""Multi-node DDP through torchrun: two "nodes" on localhost (c10d rendezvous, gloo).

Two ``torchrun --nnodes 2 --nproc_per_node 1`` agents, one per node, train a tiny model
two steps under Lightning DDP (``trainer.num_nodes=2 trainer.devices=1``) with batch 2 per
rank; a single process then trains the same steps with batch 4. The two are the same
computation when nothing depends on how a step's clips are split over ranks:

- the data: each step's global batch is the whole training set (22 keyframes: 11 per rank,
  one step an epoch, two epochs), so every step sees the same clips in both runs. A step of
  a part of the set would not: Lightning always wraps the training sampler in a
  ``DistributedSamplerWrapper(shuffle=True)``, which permutes our sampler's drawn order
  again (seeded by the run seed and the epoch) before dealing it out to the ranks, so
  the first 2B clips of a 2-rank epoch are not the first 2B of a 1-process epoch;
- ``model.frozen_bn=true``: BatchNorm in training mode normalises with per-rank batch
  statistics (and DDP does not sync them), which a batch of 4 cannot reproduce;
- ``model.dropout=0`` (dropout is seeded per rank) and ``data.augment=false`` (the
  per-batch rotation of non-square frames is drawn per batch);
- the loss is a mean over a batch's labelled boxes and DDP averages the ranks' gradients:
  equal to the mean over all boxes only when the ranks hold equally many boxes, which the
  test checks (every synthetic keyframe has one box).

Validation runs on the whole validation set (9 keyframes: the DistributedSampler pads rank
1 with a repeat of one, which the gathering keeps once). ``val_loss`` and ``train_loss``
are not compared: ``val_loss`` is the mean of the per-rank means (it counts the padded
repeat), ``train_loss`` is rank 0's own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
TIMEOUT = 300

#: Both runs: no batch-split dependence (see the module docstring); the full validation set.
COMMON = ["model.dropout=0", "model.frozen_bn=true", "data.augment=false", "optim.epochs=2",
          "trainer.limit_train_batches=1.0", "trainer.limit_val_batches=1.0"]
TRAIN_KEYFRAMES = 22
#: Fields of ``val_summary.jsonl`` computed from the validation records gathered from every rank.
GATHERED_METRICS = ("mAP", "top1", "macro_f1", "fall_precision", "fall_recall", "fall_ap", "fall_threshold")


def _env() -> dict[str, str]:
    drop = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
            "TORCHELASTIC_RUN_ID", "THERMAL_ACTION_RUN_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check(proc: subprocess.Popen, what: str) -> None:
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{what} did not finish in {TIMEOUT} s:\n{out[-4000:]}")
    assert proc.returncode == 0, f"{what} failed:\n{out[-4000:]}"


def _torchrun_two_nodes(data_root, out: Path, *overrides: str) -> None:
    endpoint, run_id = f"127.0.0.1:{_free_port()}", f"thermal-{uuid.uuid4().hex[:12]}"
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--node_rank", str(node), "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint,
               "--rdzv_id", run_id,
               # Both agents are on localhost: say which one serves the rendezvous store.
               "--rdzv_conf", f"is_host={'true' if node == 0 else 'false'}",
               str(WORKER), str(data_root), str(out), *overrides]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=_env()))
    try:
        for node, proc in enumerate(procs):
            _check(proc, f"torchrun node {node}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _single_process(data_root, out: Path, *overrides: str) -> None:
    proc = subprocess.Popen([sys.executable, str(WORKER), str(data_root), str(out), *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    _check(proc, "single-process run")


def _val_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "run" / "val_summary.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def even_root(tmp_path_factory):
    """A synthetic set of 22 training keyframes (two recordings of 96 frames), one box each,
    and 9 validation keyframes."""
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset

    root = tmp_path_factory.mktemp("synth_even")
    generate_dataset(root, SynthConfig(num_recordings=3, frames_per_recording=96, seed=0, val_recordings=1))
    return root


@pytest.mark.slow
def test_torchrun_two_nodes_equal_one_process_with_the_same_effective_batch(tmp_path, even_root):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir()
    single.mkdir()
    _torchrun_two_nodes(even_root, ddp, *COMMON, "trainer.devices=1", "trainer.num_nodes=2",
                        "trainer.strategy=ddp", f"data.batch_size={TRAIN_KEYFRAMES // 2}")
    _single_process(even_root, single, *COMMON, "trainer.devices=1", "trainer.num_nodes=1",
                    "trainer.strategy=auto", f"data.batch_size={TRAIN_KEYFRAMES}")

    r0 = torch.load(ddp / "rank0.pt", weights_only=True)
    r1 = torch.load(ddp / "rank1.pt", weights_only=True)
    one = torch.load(single / "rank0.pt", weights_only=True)
    assert not (ddp / "rank2.pt").exists() and not (single / "rank1.pt").exists()
    assert r0["world_size"] == r1["world_size"] == 2 and one["world_size"] == 1
    assert r0["global_step"] == r1["global_step"] == one["global_step"] == 2

    # The data: each step, the two ranks together hold the whole set, once, like the 1 process.
    half = TRAIN_KEYFRAMES // 2
    assert len(r0["image_ids"]) == len(r1["image_ids"]) == 2 * half and len(one["image_ids"]) == 2 * TRAIN_KEYFRAMES
    for s in range(2):
        both = r0["image_ids"][s * half:(s + 1) * half] + r1["image_ids"][s * half:(s + 1) * half]
        assert len(set(both)) == TRAIN_KEYFRAMES, s
        assert sorted(both) == sorted(one["image_ids"][s * TRAIN_KEYFRAMES:(s + 1) * TRAIN_KEYFRAMES]), s
    # The premise of equal gradients (per-rank box means averaged = the mean over all boxes).
    assert r0["boxes_per_batch"] == r1["boxes_per_batch"] == [half, half]
    assert one["boxes_per_batch"] == [TRAIN_KEYFRAMES, TRAIN_KEYFRAMES]

    # Both ranks hold the same weights (gradient all-reduce), equal to the 1-process weights
    # up to float summation order.
    assert r0["state"].keys() == r1["state"].keys() == one["state"].keys()
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
        if v.is_floating_point():
            torch.testing.assert_close(v, one["state"][k], rtol=1e-4, atol=1e-5, msg=k)
        else:
            assert torch.equal(v, one["state"][k]), k
    # Both started from the same weights and training moved them (the comparison is not of
    # two initialisations).
    for k, v in r0["initial"].items():
        assert torch.equal(v, one["initial"][k]), k
    moved = [k for k, v in r0["state"].items() if v.is_floating_point() and not torch.equal(v, r0["initial"][k])]
    assert len(moved) > 10, moved

    # Validation (each epoch): the records gathered from both ranks give the 1-process metrics.
    rows_ddp, rows_one = _val_rows(ddp), _val_rows(single)
    assert [r["step"] for r in rows_ddp] == [r["step"] for r in rows_one] == [1, 2]
    for row_ddp, row_one in zip(rows_ddp, rows_one):
        assert row_ddp["mAP"] is not None
        for key in GATHERED_METRICS:
            a, b = row_ddp[key], row_one[key]
            assert (a is None) == (b is None), (row_ddp["step"], key)
            if a is not None:
                assert a == pytest.approx(b, rel=1e-4, abs=1e-5), (row_ddp["step"], key)
