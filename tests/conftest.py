"""Suite-wide settings.

The suite runs as ``pytest -n 2`` on 2-core machines: with PyTorch's default of one
thread per core in each worker, the workers oversubscribe the cores and tiny training
steps run 5-20x slower. One intra-op thread per worker keeps the suite fast.
"""

import torch

torch.set_num_threads(1)
