"""FeatureBank: keyed storage, neighbour ranks and offsets, exclusions, empty reads."""

from __future__ import annotations

import pytest
import torch

from thermal_action.models.feature_bank import FeatureBank

CPU = torch.device("cpu")


def _write(bank: FeatureBank, sensor: str, frame: int, n: int, value: float, dim: int = 3) -> None:
    bank.write([(sensor, frame)], torch.full((n, dim), value), torch.zeros(n, dtype=torch.long))


def test_neighbours_are_ranked_keyframes_of_the_same_sensor_without_the_query():
    bank = FeatureBank(window=2)
    for frame in (3, 10, 11, 20, 40, 41):
        _write(bank, "A", frame, 1, float(frame))
    _write(bank, "B", 12, 1, -1.0)
    # Stored query: itself excluded, 2 stored keyframes on each side.
    assert bank.neighbours(("A", 11)) == [(3, -2), (10, -1), (20, 1), (40, 2)]
    # Unstored query between 11 and 20: ranks count from its would-be position.
    assert bank.neighbours(("A", 15)) == [(10, -2), (11, -1), (20, 1), (40, 2)]
    # Edges of the recording and another sensor's keyframes.
    assert bank.neighbours(("A", 3)) == [(10, 1), (11, 2)]
    assert bank.neighbours(("A", 50)) == [(40, -2), (41, -1)]
    assert bank.neighbours(("C", 5)) == []


def test_read_flattens_entries_with_clip_index_and_offsets():
    bank = FeatureBank(window=1)
    _write(bank, "A", 10, 2, 1.0)
    _write(bank, "A", 20, 1, 2.0)
    _write(bank, "B", 5, 3, 3.0)
    memory = bank.read([("A", 15), ("B", 6), ("B", 5)], dim=3, device=CPU, dtype=torch.float32)
    assert memory.clip_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert memory.offsets.tolist() == [-1, -1, 1, -1, -1, -1]
    assert memory.features[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0, 3.0, 3.0]
    # ("B", 5) itself is excluded: nothing else is stored for B.
    assert 2 not in memory.clip_index.tolist()


def test_write_splits_a_batch_by_clip_detaches_and_replaces():
    bank = FeatureBank(window=3)
    feats = torch.arange(12.0).view(4, 3).requires_grad_()
    bank.write([("A", 1), ("A", 2), ("A", 3)], feats * 2, torch.tensor([0, 0, 2, 2]))
    assert bank.get(("A", 1)).tolist() == [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]
    assert bank.get(("A", 2)).shape == (0, 3)  # a keyframe without people is still a keyframe
    assert not bank.get(("A", 3)).requires_grad
    _write(bank, "A", 1, 1, 7.0)
    assert bank.get(("A", 1)).tolist() == [[7.0, 7.0, 7.0]] and len(bank) == 3
    assert bank.neighbours(("A", 2)) == [(1, -1), (3, 1)]


def test_empty_bank_and_clear():
    bank = FeatureBank(window=3)
    memory = bank.read([("A", 1)], dim=5, device=CPU, dtype=torch.float32)
    assert memory.features.shape == (0, 5) and memory.num_entries == 0
    _write(bank, "A", 1, 1, 1.0, dim=5)
    bank.clear()
    assert len(bank) == 0 and ("A", 1) not in bank


def test_feature_width_mismatch_is_a_clear_error():
    bank = FeatureBank(window=1)
    _write(bank, "A", 1, 1, 1.0, dim=3)
    with pytest.raises(ValueError, match="3-d"):
        _write(bank, "A", 2, 1, 1.0, dim=4)
    with pytest.raises(ValueError, match="3-d"):
        bank.read([("A", 2)], dim=4, device=CPU, dtype=torch.float32)
