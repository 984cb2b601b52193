"""Interaction blocks: attention maths by hand, masking, memory positions, dense mixing."""

from __future__ import annotations

import pytest
import torch

from thermal_action.models.feature_bank import MemoryBatch
from thermal_action.models.interaction import InteractionBlock, InteractionStructure


def _w(conv: torch.nn.Conv3d) -> tuple[torch.Tensor, torch.Tensor]:
    return conv.weight.detach().double().flatten(1), conv.bias.detach().double()


def test_block_equals_attention_by_hand():
    block = InteractionBlock(6, 5, 7, 4, num_positions=5, dropout=0.5, init_std=0.3, zero_init_out=False).eval()
    with torch.no_grad():
        block.temporal_position_k.normal_()
        block.temporal_position_v.normal_()
    query = torch.randn(3, 6)
    others = torch.randn(4, 5)
    mask = torch.tensor([[True, True, False, True], [False, False, False, False], [False, True, True, False]])
    positions = torch.tensor([0, 4, 2, 1])
    with torch.no_grad():
        got = block(query, others, mask, positions)

    q = query.double() @ _w(block.query)[0].T + _w(block.query)[1]
    pos_k = block.temporal_position_k.detach().double().view(5, 4)[positions]
    pos_v = block.temporal_position_v.detach().double().view(5, 4)[positions]
    k = others.double() @ _w(block.key)[0].T + _w(block.key)[1] + pos_k
    v = others.double() @ _w(block.value)[0].T + _w(block.value)[1] + pos_v
    shortcut = query.double() @ _w(block.shortcut)[0].T + _w(block.shortcut)[1]
    ref = shortcut.clone()
    for r in range(3):
        keys = mask[r].nonzero().flatten()
        if len(keys) == 0:
            continue  # nothing to attend to: residual only
        att = torch.softmax(q[r] @ k[keys].T / 2.0, dim=0) @ v[keys]  # sqrt(4) = 2
        ref[r] += torch.relu(att) @ _w(block.out)[0].T + _w(block.out)[1]
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_memory_offsets_beyond_30_share_the_last_position():
    structure = InteractionStructure(12, mode="serial", dim_inner=8, dropout=0.0, init_std=0.3, zero_init_out=False)
    with torch.no_grad():
        for name in ("M_block_1", "M_block_2"):
            getattr(structure, name).temporal_position_k.normal_()
            getattr(structure, name).temporal_position_v.normal_()
    structure.eval()
    person = torch.randn(2, 12)
    clip = torch.tensor([0, 0])
    feats = torch.randn(2, 12)

    def run(offsets):
        memory = MemoryBatch(feats, torch.tensor([0, 0]), torch.tensor(offsets))
        with torch.no_grad():
            return structure(person, clip, memory)

    torch.testing.assert_close(run([-30, 30]), run([-45, 31]))
    assert not torch.allclose(run([-30, 30]), run([-29, 30]))
    # An empty memory is allowed (first epoch) and differs from a filled one.
    empty = MemoryBatch(torch.zeros(0, 12), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with torch.no_grad():
        out = structure(person, clip, empty)
    assert out.shape == (2, 12) and not torch.allclose(out, run([-1, 1]))


def test_dense_params_start_by_taking_the_previous_block():
    structure = InteractionStructure(12, mode="denseserial", dim_inner=8)
    for idx in range(2, 6):
        mix = torch.softmax(structure.dense_params[str(idx)].detach(), dim=0)
        assert mix.shape == (idx, 8, 1, 1, 1)
        torch.testing.assert_close(mix[idx - 1], torch.ones(8, 1, 1, 1), atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["parallel", "serial", "denseserial"])
def test_output_width_and_last_blocks_project_back(mode):
    structure = InteractionStructure(12, mode=mode, dim_inner=8)
    with_shortcut = sorted(n for n in structure.block_names if getattr(structure, n).shortcut is not None)
    expected = ["M_block_2", "O_block_2", "P_block_2"] if mode == "parallel" else ["M_block_2"]
    assert with_shortcut == expected
    person = torch.randn(3, 12)
    assert structure(person, torch.tensor([0, 1, 1])).shape == (3, 12)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="denseserial"):
        InteractionStructure(12, mode="dense")
