"""Fixtures for the training tests: one tiny synthetic dataset and one trained run, shared.

The tiny settings themselves are :mod:`helpers.configs`.
"""

from __future__ import annotations

import logging

import pytest

from helpers import configs


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
    from thermal_action.data.synth.config import SynthConfig
    from thermal_action.data.synth.write import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, SynthConfig(num_recordings=3, frames_per_recording=100, seed=0, val_recordings=1))
    return root


@pytest.fixture(scope="session")
def tiny_config(synth_root):
    """``tiny_config(*overrides)`` -> a Config that trains in about a second on the synthetic set."""

    def make(*overrides: str, config_file=None):
        return configs.tiny_config(f"data.root={synth_root}", *overrides, config_file=config_file)

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_config):
    """One finished tiny training run (1 epoch, 2 steps), for the checkpoint/evaluate tests."""
    from thermal_action.training.train import train

    logging.getLogger("lightning").setLevel(logging.WARNING)
    out = tmp_path_factory.mktemp("run")
    return train(tiny_config(), out)
