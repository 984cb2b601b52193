"""Run by test_ddp.py and test_torchrun.py: CPU processes (gloo) train two steps under Lightning DDP.

Started plainly, Lightning's launcher re-runs this script once more with ``LOCAL_RANK=1``;
under torchrun each process reads its rank from the environment (overrides such as
``trainer.devices=1 trainer.num_nodes=2``). At the end each rank saves to ``OUT/rank{r}.pt``
its weights at the start and at the end, the image ids it trained on and the labelled boxes
of each batch, so the tests can compare ranks and runs.

Usage: python ddp_worker.py DATA_ROOT OUT_DIR [key=value ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch

from thermal_action.config import load_config
from thermal_action.training.train import train


class SaveRankWeights(L.Callback):
    def __init__(self, out: Path):
        self.out = out
        self.image_ids: list[str] = []
        self.boxes_per_batch: list[int] = []
        self.initial: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module):
        self.initial = {k: v.detach().cpu().clone() for k, v in pl_module.model.state_dict().items()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.image_ids.extend(batch.image_ids)
        self.boxes_per_batch.append(int((batch.labels >= 0).sum()))

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().cpu().clone() for k, v in pl_module.model.state_dict().items()}
        torch.save({"state": state, "world_size": trainer.world_size, "global_step": trainer.global_step,
                    "image_ids": self.image_ids, "boxes_per_batch": self.boxes_per_batch,
                    "initial": self.initial},
                   self.out / f"rank{trainer.global_rank}.pt")


def main() -> None:
    root, out = sys.argv[1], Path(sys.argv[2])
    cfg = load_config(None, [
        f"data.root={root}", "model.variant=slowfast_tiny", "model.head_dim=32", "data.num_frames=16",
        "data.batch_size=2", "optim.epochs=1", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.strategy=ddp", "trainer.precision=32-true", "trainer.progress_bar=false",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "trainer.num_sanity_val_steps=0",
        *sys.argv[3:],
    ])
    torch.set_num_threads(1)
    train(cfg, out / "run", callbacks=[SaveRankWeights(out)])


if __name__ == "__main__":
    main()
