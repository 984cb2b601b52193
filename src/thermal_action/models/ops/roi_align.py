"""RoIAlign in plain PyTorch (no torchvision), with torchvision's maths.

Each output cell averages ``gh x gw`` bilinear samples taken at the centres of a
regular grid inside the cell. Bilinear interpolation is separable and so is the
out-of-image rule (a sample further than one pixel outside the map counts as zero),
so one cell's average factorises into a row-weight vector times the map times a
column-weight vector::

    out[r, c, p, q] = sum_h sum_w  Ay[r, p, h] * F[b_r, c, h, w] * Ax[r, q, w]

``Ay`` (R, P, H) and ``Ax`` (R, Q, W) hold, per output row/column, the mean over its
samples of the bilinear weights of every feature row/column. Building them is cheap
(R x bins x samples), and the whole RoIAlign becomes two batched matmuls, which
autograd differentiates exactly (the backward is the transposed scatter). The
arithmetic runs in float32 (float64 for float64 input) even under bf16 autocast, so
box positions are not rounded to bf16's 8 mantissa bits.
"""

from __future__ import annotations

import torch


def _axis_weights(
    start: torch.Tensor, size: torch.Tensor, bins: int, sampling_ratio: int, length: int
) -> torch.Tensor:
    """Mean bilinear weights of the samples of each bin along one axis.

    Args:
        start: ``(R,)`` RoI start in feature-map coordinates.
        size: ``(R,)`` RoI extent in feature-map coordinates.
        bins: output cells along this axis.
        sampling_ratio: samples per cell (``<= 0``: ``ceil(size / bins)`` per RoI).
        length: feature-map size along this axis.

    Returns:
        ``(R, bins, length)`` weights.
    """
    r = start.shape[0]
    bin_size = size / bins  # (R,)
    if sampling_ratio > 0:
        grid = torch.full((r,), sampling_ratio, dtype=torch.long, device=start.device)
    else:
        grid = torch.ceil(size / bins).long().clamp(min=0)
    g_max = max(int(grid.max()) if r else 1, 1)
    i = torch.arange(g_max, device=start.device, dtype=start.dtype)  # (G,)
    p = torch.arange(bins, device=start.device, dtype=start.dtype)  # (P,)
    g = grid.clamp(min=1).to(start.dtype)
    # (R, P, G) sample positions at the centres of a g x g grid in each bin.
    pos = (
        start[:, None, None]
        + p[None, :, None] * bin_size[:, None, None]
        + (i[None, None, :] + 0.5) * (bin_size / g)[:, None, None]
    )
    keep = (i[None, None, :] < grid[:, None, None]) & (pos >= -1.0) & (pos <= length)
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    at_edge = low >= length - 1
    low = torch.where(at_edge, torch.full_like(low, length - 1), low)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(pos), pos - low.to(pos.dtype))
    w_low = (1 - frac) * keep
    w_high = frac * keep
    weights = torch.zeros(r, bins, g_max, length, dtype=start.dtype, device=start.device)
    weights.scatter_add_(3, low.unsqueeze(-1), w_low.unsqueeze(-1))
    weights.scatter_add_(3, high.unsqueeze(-1), w_high.unsqueeze(-1))
    return weights.sum(dim=2) / grid.clamp(min=1).to(start.dtype)[:, None, None]


def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> torch.Tensor:
    """RoIAlign (Mask R-CNN), numerically the same as ``torchvision.ops.roi_align``.

    Args:
        features: ``(B, C, H, W)`` feature maps.
        rois: ``(R, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in input pixels.
        output_size: ``P`` or ``(P, Q)`` output cells (rows, columns).
        spatial_scale: feature cells per input pixel (1 / output stride).
        sampling_ratio: samples per cell side; ``<= 0`` picks ``ceil(roi / cells)`` per RoI.
        aligned: shift boxes by half a cell so that pixel corners map to cell corners
            (detectron2's ``ROIAlignV2``); ``False`` reproduces the legacy behaviour
            (no shift, RoIs at least one cell wide).

    Returns:
        ``(R, C, P, Q)`` pooled features in ``features.dtype``; ``R = 0`` gives an empty
        tensor that still carries a gradient path.
    """
    if features.dim() != 4:
        raise ValueError(f"roi_align expects (B, C, H, W) features, got {tuple(features.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"roi_align expects (R, 5) rois (batch_index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else output_size
    b, c, h, w = features.shape
    compute_dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=features.device.type, enabled=False):
        boxes = rois.detach().to(compute_dtype)
        batch_idx = boxes[:, 0].long()
        if boxes.shape[0] and (int(batch_idx.min()) < 0 or int(batch_idx.max()) >= b):
            raise ValueError(f"rois reference batch indices {batch_idx.unique().tolist()} but there are {b} maps")
        offset = 0.5 if aligned else 0.0
        x1 = boxes[:, 1] * spatial_scale - offset
        y1 = boxes[:, 2] * spatial_scale - offset
        bw = boxes[:, 3] * spatial_scale - offset - x1
        bh = boxes[:, 4] * spatial_scale - offset - y1
        if not aligned:
            bw = bw.clamp(min=1.0)
            bh = bh.clamp(min=1.0)
        ay = _axis_weights(y1, bh, ph, sampling_ratio, h)  # (R, P, H)
        ax = _axis_weights(x1, bw, pw, sampling_ratio, w)  # (R, Q, W)
        per_roi = features.to(compute_dtype).index_select(0, batch_idx)  # (R, C, H, W)
        # (R, C, H, W) @ (R, 1, W, Q) -> (R, C, H, Q); (R, 1, P, H) @ that -> (R, C, P, Q)
        out = torch.matmul(ay.unsqueeze(1), torch.matmul(per_roi, ax.transpose(1, 2).unsqueeze(1)))
    return out.to(features.dtype)
