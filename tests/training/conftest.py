"""Fixtures for the training tests: one tiny synthetic dataset and one trained run, shared.

Helpers are fixtures (not an importable module) because the suite runs with
``--import-mode=importlib``, where test directories are not on ``sys.path``.
"""

from __future__ import annotations

import logging

import pytest

from thermal_action.config import load_config

#: A clip of 16 raw frames at stride 2: 8 fast frames, 1 slow frame (alpha 8); 40x60 input.
TINY_OVERRIDES = [
    "model.variant=slowfast_tiny",
    "model.head_dim=32",
    "data.num_frames=16",
    "data.frame_stride=2",
    "data.batch_size=4",
    "optim.epochs=1",
    "optim.warmup_epochs=0.5",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "trainer.progress_bar=false",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread: the suite runs with ``-n 2`` on 2 cores, and two busy-waiting
    OpenMP threads per worker made a tiny training step 5-20x slower (measured)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A synthetic dataset: 3 recordings of 100 frames, the last one held out for val.json."""
    from thermal_action.data.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, SynthConfig(num_recordings=3, frames_per_recording=100, seed=0, val_recordings=1))
    return root


@pytest.fixture(scope="session")
def tiny_config(synth_root):
    """``tiny_config(*overrides)`` -> a Config that trains in about a second on the synthetic set."""

    def make(*overrides: str, config_file=None):
        return load_config(config_file, [f"data.root={synth_root}", *TINY_OVERRIDES, *overrides])

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_config):
    """One finished tiny training run (1 epoch, 2 steps), for the checkpoint/evaluate tests."""
    from thermal_action.training.train import train

    logging.getLogger("lightning").setLevel(logging.WARNING)
    out = tmp_path_factory.mktemp("run")
    return train(tiny_config(), out)
