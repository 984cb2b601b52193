"""AlphAction's interaction aggregation (IA) structure over pooled person features.

Three kinds of interaction block refine a person's feature by attention:

- **P** (person-person): over every person of the same clip (itself included, as in
  AlphAction), found through the RoIs' batch index.
- **O** (person-object): over object RoIs of the same clip, when given.
- **M** (memory): over persons of neighbouring keyframes of the same recording, read
  from the detector's :class:`~thermal_action.models.feature_bank.FeatureBank`, with a
  learned temporal position (relative keyframe offset, clipped to +-30) added to keys
  and values.

Blocks run in the order ``P, O, M, P, O, M``, combined as

- ``serial``: each block refines the previous block's output;
- ``denseserial``: block ``i >= 2`` takes a learned per-channel softmax mix of all
  previous outputs (``dense_params``);
- ``parallel``: two layers of ``(P, O, M)``; each block refines the same-type block of
  the previous layer and the last layer's outputs are summed.

::

    person (R, D) -> person_dim_reduce -> q (R, I) -> [P_block_1 -> O_block_1 -> M_block_1
                  -> P_block_2 -> O_block_2 -> M_block_2] -> (R, D)   (serial order)

Module names and parameter shapes equal AlphAction's
``roi_heads.action.feature_extractor.ia_structure.*`` (1x1x1 Conv3d, bias), so its
weights load by a prefix swap. The 1x1x1 convs are applied as ``F.linear`` on
``(R, D)`` rows (same maths, no reshapes).

Two deliberate differences from AlphAction: padding slots are masked out of the
attention (AlphAction attends to zero-padded slots of fixed size ``MAX_PERSON``), and
a person with an empty key set (no objects, empty memory) gets no interaction term,
only the residual path. With ``object_rois=None`` the O blocks are skipped
entirely (residual path only), so their ``query/key/value/out`` weights and
``object_dim_reduce`` receive no gradient: they are kept for weight loading and for
object boxes later, and are intentionally unused until then.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from thermal_action.models.feature_bank import MemoryBatch

INTERACTION_MODES = ("parallel", "serial", "denseserial")
#: AlphAction's maximum relative keyframe offset with its own position embedding.
MAX_MEMORY_OFFSET = 30
_BLOCK_ORDER = ("P", "O", "M", "P", "O", "M")


def _conv1x1(dim_in: int, dim_out: int, init_std: float) -> nn.Conv3d:
    conv = nn.Conv3d(dim_in, dim_out, 1, bias=True)
    if init_std > 0:
        nn.init.normal_(conv.weight, std=init_std)
    else:
        nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _apply(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1x1 Conv3d applied to ``(..., C)`` rows."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


class InteractionBlock(nn.Module):
    """Scaled dot-product attention of persons over a key set, plus a residual.

    ``out = shortcut(q) + dropout(out(relu(softmax(q K^T / sqrt(I)) V)))``; the attention
    term is zero for a person whose key set is empty.

    Args:
        dim_query: query feature width.
        dim_other: key/value feature width.
        dim_out: output width (a 1x1x1 ``shortcut`` projects the residual when it differs).
        dim_inner: attention width ``I``.
        num_positions: temporal position embeddings (M blocks: ``2 * 30 + 1``), 0 for none.
        dropout: dropout on the attention term (not in place).
        init_std: std of the normal init of the 1x1x1 convs.
        zero_init_out: start ``out`` at zero so the block is an identity at first (AlphAction).
    """

    def __init__(
        self,
        dim_query: int,
        dim_other: int,
        dim_out: int,
        dim_inner: int,
        num_positions: int = 0,
        dropout: float = 0.0,
        init_std: float = 0.01,
        zero_init_out: bool = True,
    ) -> None:
        super().__init__()
        self.dim_inner = dim_inner
        self.query = _conv1x1(dim_query, dim_inner, init_std)
        self.key = _conv1x1(dim_other, dim_inner, init_std)
        self.value = _conv1x1(dim_other, dim_inner, init_std)
        self.out = _conv1x1(dim_inner, dim_out, 0.0 if zero_init_out else init_std)
        self.shortcut = _conv1x1(dim_query, dim_out, init_std) if dim_query != dim_out else None
        if num_positions > 0:
            # AlphAction's shapes: (positions, 1, I, 1, 1, 1).
            self.temporal_position_k = nn.Parameter(torch.zeros(num_positions, 1, dim_inner, 1, 1, 1))
            self.temporal_position_v = nn.Parameter(torch.zeros(num_positions, 1, dim_inner, 1, 1, 1))
        else:
            self.temporal_position_k = None
            self.temporal_position_v = None
        self.dropout = nn.Dropout(dropout)

    def residual(self, query: torch.Tensor) -> torch.Tensor:
        """The block's output when it has nothing to attend to."""
        return query if self.shortcut is None else _apply(self.shortcut, query)

    def forward(
        self,
        query: torch.Tensor,
        others: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Refines the queries.

        Args:
            query: ``(R, Dq)`` person features.
            others: ``(S, Do)`` key/value features (all clips of the batch).
            mask: ``(R, S)`` bool, which keys each person may attend to.
            positions: ``(S,)`` temporal position index of each key (M blocks).

        Returns:
            ``(R, dim_out)``.
        """
        q = _apply(self.query, query)  # (R, I)
        k = _apply(self.key, others)  # (S, I)
        v = _apply(self.value, others)  # (S, I)
        if self.temporal_position_k is not None:
            if positions is None:
                raise ValueError("a memory block needs the temporal positions of its keys")
            k = k + self.temporal_position_k.view(-1, self.dim_inner)[positions]
            v = v + self.temporal_position_v.view(-1, self.dim_inner)[positions]
        # Scores and softmax in float32: bf16 logits would make the weights coarse.
        scores = (q.float() @ k.float().t()) * (self.dim_inner**-0.5)  # (R, S)
        scores = scores.masked_fill(~mask, -1e4)
        weights = torch.softmax(scores, dim=1) * mask  # rows without keys become all zero
        attended = weights.to(v.dtype) @ v  # (R, I)
        term = self.dropout(_apply(self.out, F.relu(attended)))
        has_keys = mask.any(dim=1, keepdim=True).to(term.dtype)  # (R, 1)
        return self.residual(query) + term * has_keys


class InteractionStructure(nn.Module):
    """AlphAction's IA structure; returns the interaction feature to add to the person feature.

    Args:
        dim_person: pooled person feature width ``D`` (2304 for R50/R101).
        mode: ``"parallel"``, ``"serial"`` or ``"denseserial"``.
        dim_inner: attention width (1024 in AlphAction).
        dropout: dropout after the dimension reductions and on each block's term.
        init_std: std of the 1x1x1 conv init (AlphAction 0.01).
        zero_init_out: start each block's ``out`` conv at zero.
        max_offset: relative keyframe offsets beyond +-``max_offset`` share an embedding.
    """

    def __init__(
        self,
        dim_person: int,
        mode: str = "denseserial",
        dim_inner: int = 1024,
        dropout: float = 0.2,
        init_std: float = 0.01,
        zero_init_out: bool = True,
        max_offset: int = MAX_MEMORY_OFFSET,
    ) -> None:
        super().__init__()
        if mode not in INTERACTION_MODES:
            raise ValueError(f"unknown interaction mode {mode!r}; expected one of {INTERACTION_MODES}")
        self.mode = mode
        self.dim_person = dim_person
        self.dim_inner = dim_inner
        self.max_offset = max_offset
        self.person_dim_reduce = _conv1x1(dim_person, dim_inner, init_std)
        self.mem_dim_reduce = _conv1x1(dim_person, dim_inner, init_std)
        self.person_key_dim_reduce = _conv1x1(dim_person, dim_inner, init_std)
        self.object_dim_reduce = _conv1x1(dim_person, dim_inner, init_std)
        self.reduce_dropout = nn.Dropout(dropout)

        n = len(_BLOCK_ORDER)
        self.block_names: list[str] = []
        counts: dict[str, int] = {}
        for idx, kind in enumerate(_BLOCK_ORDER):
            counts[kind] = counts.get(kind, 0) + 1
            name = f"{kind}_block_{counts[kind]}"
            last = idx >= n // 2 if mode == "parallel" else idx == n - 1
            block = InteractionBlock(
                dim_inner,
                dim_inner,
                dim_person if last else dim_inner,
                dim_inner,
                num_positions=2 * max_offset + 1 if kind == "M" else 0,
                dropout=dropout,
                init_std=init_std,
                zero_init_out=zero_init_out,
            )
            self.add_module(name, block)
            self.block_names.append(name)
        if mode == "denseserial":
            self.dense_params = nn.ParameterDict()
            for idx in range(2, n):
                # Starts as "take the previous block's output" (weight 1e-5 for older ones).
                init = torch.full((idx, dim_inner, 1, 1, 1), -5 * math.log(10))
                init[idx - 1] = 0
                self.dense_params[str(idx)] = nn.Parameter(init)
        else:
            self.dense_params = None

    def forward(
        self,
        person: torch.Tensor,
        person_clip: torch.Tensor,
        memory: MemoryBatch | None = None,
        objects: torch.Tensor | None = None,
        object_clip: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Computes the interaction feature.

        Args:
            person: ``(R, D)`` pooled person features.
            person_clip: ``(R,)`` int64 clip (batch index) of each person.
            memory: neighbouring keyframes' person features (None or empty: no memory).
            objects: ``(S_o, D)`` pooled object features, or None to skip the O blocks.
            object_clip: ``(S_o,)`` clip of each object.

        Returns:
            ``(R, D)`` interaction feature (AlphAction adds it to ``person``).
        """
        query = self.reduce_dropout(_apply(self.person_dim_reduce, person))  # (R, I)
        person_key = self.reduce_dropout(_apply(self.person_key_dim_reduce, person))  # (R, I)
        same_clip = person_clip[:, None] == person_clip[None, :]  # (R, R)

        if objects is not None:
            if object_clip is None:
                raise ValueError("objects need object_clip (their batch index)")
            object_key = self.reduce_dropout(_apply(self.object_dim_reduce, objects))
            object_mask = person_clip[:, None] == object_clip[None, :]
        else:
            object_key = object_mask = None

        if memory is None:
            memory = MemoryBatch(
                features=person.new_zeros(0, self.dim_person),
                clip_index=person_clip.new_zeros(0),
                offsets=person_clip.new_zeros(0),
            )
        mem_key = self.reduce_dropout(_apply(self.mem_dim_reduce, memory.features.to(person.dtype)))
        mem_mask = person_clip[:, None] == memory.clip_index[None, :]
        mem_pos = memory.offsets.clamp(-self.max_offset, self.max_offset) + self.max_offset

        def run(name: str, q: torch.Tensor, p_key: torch.Tensor) -> torch.Tensor:
            block: InteractionBlock = getattr(self, name)
            kind = name[0]
            if kind == "P":
                return block(q, p_key, same_clip)
            if kind == "O":
                if object_key is None:
                    return block.residual(q)
                return block(q, object_key, object_mask)
            return block(q, mem_key, mem_mask, mem_pos)

        if self.mode == "serial":
            for name in self.block_names:
                query = run(name, query, person_key)
                person_key = query
            return query

        if self.mode == "denseserial":
            history: list[torch.Tensor] = []
            for idx, name in enumerate(self.block_names):
                if idx >= 2:
                    mix = torch.softmax(self.dense_params[str(idx)], dim=0).view(idx, 1, self.dim_inner)
                    query = (torch.stack(history, dim=0) * mix).sum(dim=0)  # (R, I)
                    person_key = query
                query = run(name, query, person_key)
                person_key = query
                history.append(query)
            return query

        # parallel: two layers of (P, O, M).
        width = len(_BLOCK_ORDER) // 2
        last = [query] * width
        for layer in range(2):
            new = []
            for j in range(width):
                name = self.block_names[layer * width + j]
                out = run(name, last[j], person_key)
                if name[0] == "P":
                    person_key = out
                new.append(out)
            last = new
        return torch.stack(last, dim=0).sum(dim=0)
