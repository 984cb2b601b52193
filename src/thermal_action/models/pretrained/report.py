"""What a load did: loaded, converted, skipped (with why), missing and mismatched tensors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from thermal_action.models.pretrained.formats import FORMAT_TITLES


@dataclass
class SkippedKey:
    """A tensor of the file that was not used, and why."""

    key: str  # name in the file
    reason: str


@dataclass
class ShapeMismatch:
    """A tensor whose name maps onto one of ours but whose shape does not fit."""

    key: str  # our name
    source_key: str  # name in the file
    file_shape: list[int]
    model_shape: list[int]


@dataclass
class ConvertedKey:
    """A tensor that was transformed (not just copied) on the way in."""

    key: str  # our name
    how: str


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did with each tensor.

    Attributes:
        source: the checkpoint path.
        format: one of the ``FORMAT_*`` names.
        top_level_key: the key of the file that held the weights (``None``: flat file).
        loaded: our tensor names that received a tensor from the file.
        skipped: tensors in the file that were not used, with the reason.
        missing: our tensor names the file has no counterpart for (they keep the
            model's initialisation); BN counters are listed apart in
            ``absent_bn_counters``.
        shape_mismatched: names that map but whose shapes differ (not loaded).
        converted: loaded tensors that were transformed (RGB stems, ...).
        absent_bn_counters: ``num_batches_tracked`` buffers the file lacks (FrozenBN
            checkpoints); harmless, they only matter for BN momentum=None.
        notes: anything else worth saying (e.g. the variant :func:`convert_checkpoint` chose).
    """

    source: str
    format: str
    top_level_key: str | None = None
    loaded: list[str] = field(default_factory=list)
    skipped: list[SkippedKey] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    shape_mismatched: list[ShapeMismatch] = field(default_factory=list)
    converted: list[ConvertedKey] = field(default_factory=list)
    absent_bn_counters: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def loaded_backbone(self) -> list[str]:
        return [k for k in self.loaded if k.startswith("backbone.")]

    @property
    def missing_backbone(self) -> list[str]:
        return [k for k in self.missing if k.startswith("backbone.")]

    def to_dict(self) -> dict[str, Any]:
        """Plain python data (lists, dicts, str, int): safe for ``weights_only`` files and JSON."""
        return asdict(self)

    def format_text(self, max_items: int = 12) -> str:
        """A human-readable summary, one section per list, long lists shortened."""
        title = FORMAT_TITLES.get(self.format, self.format)
        where = f"top-level key '{self.top_level_key}'" if self.top_level_key else "flat tensor file"
        lines = [f"Pretrained weights from {self.source} ({title} layout, {where})"]
        n_bb = len(self.loaded_backbone)
        lines.append(f"  loaded: {len(self.loaded)} tensors (backbone {n_bb}, head {len(self.loaded) - n_bb})")

        def section(name: str, items: list[str]) -> None:
            lines.append(f"  {name}: {len(items)}")
            for s in items[:max_items]:
                lines.append(f"    {s}")
            if len(items) > max_items:
                lines.append(f"    ... and {len(items) - max_items} more")

        section("converted", [f"{c.key}: {c.how}" for c in self.converted])
        section("skipped (in file, not used)", [f"{s.key}: {s.reason}" for s in self.skipped])
        section("missing (in model, not in file; keep their initialisation)", self.missing)
        section(
            "shape mismatched (not loaded)",
            [f"{m.key} <- {m.source_key}: file {m.file_shape} vs model {m.model_shape}" for m in self.shape_mismatched],
        )
        if self.absent_bn_counters:
            lines.append(
                f"  BN counters absent: {len(self.absent_bn_counters)} num_batches_tracked buffers "
                "(a FrozenBN checkpoint: harmless, they keep their value; consider model.frozen_bn=true)"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
