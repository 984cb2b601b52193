"""The checkpoint layouts we read, by name, and tensor names several steps need."""

from __future__ import annotations

FORMAT_ALPHACTION = "alphaction"
FORMAT_PYSLOWFAST = "pyslowfast"
FORMAT_MMACTION2 = "mmaction2"
FORMAT_PYTORCHVIDEO = "pytorchvideo"
FORMAT_OURS = "thermal_action"

#: Human-readable names for reports and errors.
FORMAT_TITLES: dict[str, str] = {
    FORMAT_ALPHACTION: "AlphAction",
    FORMAT_PYSLOWFAST: "PySlowFast",
    FORMAT_MMACTION2: "MMAction2",
    FORMAT_PYTORCHVIDEO: "PyTorchVideo",
    FORMAT_OURS: "thermal-action",
}

STEM_CONV_KEYS = ("backbone.s1.pathway0_stem.conv.weight", "backbone.s1.pathway1_stem.conv.weight")
#: The convolutions that read the input frames: the SlowFast stems and the crop CNN's first
#: layer. A model with zone masks (``model.room``) has more input channels than the file.
INPUT_CONV_KEYS = (*STEM_CONV_KEYS, "backbone.body.0.weight")
BN_COUNTER = "num_batches_tracked"

__all__ = ["BN_COUNTER", "FORMAT_ALPHACTION", "FORMAT_MMACTION2", "FORMAT_OURS", "FORMAT_PYSLOWFAST",
           "FORMAT_PYTORCHVIDEO", "FORMAT_TITLES", "INPUT_CONV_KEYS", "STEM_CONV_KEYS"]
