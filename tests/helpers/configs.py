"""The tiny configuration every test trains, predicts or serves with: ``slowfast_tiny`` on
clips of 16 raw frames at stride 2 (8 fast frames, 1 slow frame), one short CPU epoch."""

from __future__ import annotations

from pathlib import Path

from thermal_action.config import Config, load_config

#: The model and clip: small enough that a forward pass takes milliseconds.
TINY_MODEL_OVERRIDES = (
    "model.variant=slowfast_tiny",
    "model.head_dim=32",
    "data.num_frames=16",
    "data.frame_stride=2",
)
#: One epoch of two steps on the CPU, no progress bar, no sanity check.
TINY_TRAINER_OVERRIDES = (
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
)


def tiny_config(*overrides: str, config_file: str | Path | None = None) -> Config:
    """A :class:`Config` with the tiny model and trainer, then ``overrides`` (``key=value``)."""
    return load_config(config_file, [*TINY_MODEL_OVERRIDES, *TINY_TRAINER_OVERRIDES, *overrides])
