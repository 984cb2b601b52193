"""Learning from what is not labelled, as config options: data.carry_labels and
data.pseudo_label_checkpoint add training keyframes; off, the training set is the annotations."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from helpers.infer import write_tiny_checkpoint
from thermal_action.training.datamodule import build_datasets


def test_carried_labels_add_training_keyframes_between_agreeing_ones(tiny_config):
    off, _ = build_datasets(tiny_config())
    on, val = build_datasets(tiny_config("data.carry_labels=2"))
    assert off.label_sources() == {"annotations": len(off)}
    carried = [k for k in on.keyframes if k.extras.get("label_source") == "carried"]
    assert carried and len(on) == len(off) + len(carried)
    assert on.label_sources() == {"annotations": len(off), "carried": len(carried)}
    labelled = {(k.sensor_id, k.frame_idx) for k in off.keyframes}
    assert not {(k.sensor_id, k.frame_idx) for k in carried} & labelled
    sample = on[len(on) - 1]  # a carried clip builds like any other
    assert (sample.labels >= 0).any() and sample.clip.shape == off[0].clip.shape
    assert len(val) == len(build_datasets(tiny_config())[1])  # validation never gets carried labels


def test_pseudo_labels_add_the_model_s_confident_people(tiny_config, tmp_path):
    from helpers.infer import tiny_config as untrained_config

    ckpt = write_tiny_checkpoint(tmp_path / "m.ckpt", untrained_config())
    low, _ = build_datasets(tiny_config(f"data.pseudo_label_checkpoint={ckpt}", "data.pseudo_label_threshold=0.01"))
    base, _ = build_datasets(tiny_config())
    pseudo = [k for k in low.keyframes if k.extras.get("label_source") == "pseudo"]
    assert pseudo and len(low) == len(base) + len(pseudo)
    assert all((k.labels >= 0).all() for k in pseudo)  # every person reaches 0.01
    assert {k.sensor_id for k in pseudo} <= {k.sensor_id for k in base.keyframes}  # training recordings only
    import torch

    torch.manual_seed(5)
    none, _ = build_datasets(tiny_config(f"data.pseudo_label_checkpoint={ckpt}", "data.pseudo_label_threshold=1.0"))
    after_pseudo = torch.rand(3)
    torch.manual_seed(5)
    build_datasets(tiny_config())
    assert none.label_sources() == {"annotations": len(base)}
    # Loading the pseudo-labelling model leaves the run's random stream alone: the same init.
    assert torch.equal(after_pseudo, torch.rand(3))
    with pytest.raises(FileNotFoundError, match="pseudo_label_checkpoint"):
        build_datasets(tiny_config(f"data.pseudo_label_checkpoint={tmp_path / 'missing.ckpt'}"))


def test_train_records_the_training_keyframes_by_label_origin(tiny_config, tmp_path):
    from thermal_action.training.train import train

    logging.getLogger("lightning").setLevel(logging.WARNING)
    result = train(tiny_config("data.carry_labels=1"), tmp_path / "run")
    info = json.loads((result.run_dir / "run_info.jsonl").read_text().splitlines()[-1])
    assert info["train_keyframes"]["carried"] > 0 and info["train_keyframes"]["annotations"] > 0
    assert np.isfinite(result.best_metric or 0.0)
