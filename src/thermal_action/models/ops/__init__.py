"""CPU kernels under the architecture: convolution dispatch (:mod:`.conv`), BatchNorm
folding (:mod:`.bn_fold`), RoIAlign (:mod:`.roi_align`) and oneDNN / allocator
workarounds (:mod:`.cpu_workarounds`). Each fast path is proven equal to the plain
PyTorch one in float64 by ``tests/models/ops``."""
