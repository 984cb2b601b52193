"""Synthetic rooms that ``train`` generates itself and mixes into the real training batches.

With ``data.synthetic_recordings > 0`` a run writes that many ``thermal-action synth``
recordings (``data.synthetic_frames`` frames each, seed ``data.synthetic_seed``, all of them
training recordings) into ``<run dir>/synthetic/`` before it reads any data, and the
training set becomes the user's ``data.train_ann`` with the synthetic keyframes mixed in at
``data.extra_train_share`` (:class:`~thermal_action.data.dataset.MixedClipDataset`).
Validation, the checkpoint choice and the fall threshold stay on the user's data.

The generator's defaults (background ~18 °C, people ~7 °C above it, boxes ~10x8 px, bursty
~6 Hz timestamps, dropped packets) match the real overhead recordings this was measured on;
on ``thermal_real`` a 50% synthetic share raised leave-one-recording-out frame-mAP from 0.27
to 0.34-0.36 (docs/benchmarks.md, "Accuracy on real recordings").

The folder is written under a temporary name and renamed, and a stamp of what was generated
is kept beside it: a resumed run (or another DDP rank) reuses it, a changed request
regenerates it. The output is a function of the settings only, so every rank writes the same.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: File in the synthetic folder recording what was generated.
STAMP = "synthetic.json"


def synthetic_config(d):
    """The :class:`~thermal_action.data.synth.config.SynthConfig` that ``DataConfig`` ``d`` asks for."""
    from thermal_action.data.synth.config import SynthConfig

    return SynthConfig(num_recordings=d.synthetic_recordings, frames_per_recording=d.synthetic_frames,
                       val_recordings=0, seed=d.synthetic_seed)


def _stamp_of(directory: Path) -> dict | None:
    try:
        return json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return None


def ensure_synthetic_rooms(d, directory: str | Path) -> Path:
    """Generates the synthetic training rooms of ``DataConfig`` ``d`` into ``directory``
    (once: an existing folder with the same stamp is reused) and returns it.

    Its ``annotations/train.json`` holds every synthetic keyframe; there is no validation split.
    """
    from thermal_action.data.synth.write import generate_dataset

    directory = Path(directory)
    sc = synthetic_config(d)
    want = json.loads(json.dumps({"synth_config": dataclasses.asdict(sc)}))  # tuples as JSON lists
    if _stamp_of(directory) == want:
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    summary = generate_dataset(tmp, sc)
    (tmp / STAMP).write_text(json.dumps(want, indent=2))
    try:
        os.rename(tmp, directory)
    except OSError:
        if _stamp_of(directory) == want:  # another process (DDP rank) finished first: the same files
            shutil.rmtree(tmp, ignore_errors=True)
            return directory
        # A folder from other settings (or a torn one): replace it.
        shutil.rmtree(directory)
        os.rename(tmp, directory)
    log.info("generated %d synthetic recordings x %d frames (seed %d, %d keyframes) into %s in %.1f s",
             sc.num_recordings, sc.frames_per_recording, sc.seed, summary["images"]["train"],
             directory, time.perf_counter() - t0)
    return directory
