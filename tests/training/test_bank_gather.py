"""The interaction models' feature bank is gathered across DDP ranks (two real gloo processes)."""

from __future__ import annotations

import os
import socket
import zlib

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from thermal_action.models.feature_bank import FeatureBank
from thermal_action.training.records import gather_feature_bank


def _features(sensor: str, frame: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(f"{sensor}:{frame}".encode()))
    return torch.randn(n, 4, generator=g)


#: What each rank writes: rank 0 the even keyframes of S1, rank 1 the odd ones and S2.
KEYS = {0: [("S1", 0, 1), ("S1", 12, 2)], 1: [("S1", 6, 1), ("S1", 18, 3), ("S2", 0, 2)]}


def _rank(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        bank = FeatureBank(window=2)
        for sensor, frame, n in KEYS[rank]:
            bank.put((sensor, frame), _features(sensor, frame, n))
        before = bank.neighbours(("S1", 12))
        n = gather_feature_bank(bank)
        out[rank] = {"n": n, "before": before, "after": bank.neighbours(("S1", 12)),
                     "entries": {(s, f): t for s, f, t in bank.entries()}}
    finally:
        dist.destroy_process_group()


def test_every_rank_ends_with_every_ranks_keyframes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(port, out), nprocs=2, join=True)
        out = dict(out)
    everything = {(s, f): _features(s, f, n) for part in KEYS.values() for s, f, n in part}
    for rank in (0, 1):
        got = out[rank]
        assert got["n"] == len(everything) == 5
        assert set(got["entries"]) == set(everything)
        for key, t in everything.items():
            torch.testing.assert_close(got["entries"][key], t, rtol=0, atol=0)
        # A keyframe now reads neighbours from both ranks' parts, as in one process.
        assert got["after"] == [(0, -2), (6, -1), (18, 1)]
    assert out[0]["before"] == [(0, -1)]


def test_outside_ddp_nothing_changes():
    bank = FeatureBank(window=1)
    bank.put(("S1", 0), torch.ones(1, 3))
    assert gather_feature_bank(bank) == 1 and gather_feature_bank(None) == 0
