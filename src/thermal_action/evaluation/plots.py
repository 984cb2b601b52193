"""Evaluation figures as PNG files: the confusion matrix, per-class precision-recall curves, and
the fall class's curve alone with its alarm's operating point.

Figures are drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``),
so nothing needs a display and the global pyplot backend is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.evaluation.frame_ap import PRCurve


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path, title: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The title also goes into the PNG's text chunk: what a figure claims can be read back.
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Title": title} if title else None)
    return path


#: Colour of the operating point on the fall figure.
OPERATING_POINT_COLOR = "#d62728"


def plot_fall_pr(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """The fall class's precision-recall curve on its own, the alarm threshold's operating point
    (its precision and recall) marked, and the number of fall boxes they rest on in the title.

    Args:
        metrics: :func:`~thermal_action.evaluation.metrics.compute_metrics` output (its
            ``fall``, ``fall_precision``, ``fall_recall`` and ``pr_curves``).
        path: PNG file to write.

    Returns:
        ``path``.
    """
    fall = metrics["fall"]
    name, n, threshold = fall["class"], int(fall["support"]), float(fall["threshold"])
    precision, recall = metrics.get("fall_precision"), metrics.get("fall_recall")
    fig = _new_figure(7.5, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    curve = (metrics.get("pr_curves") or {}).get(name)
    ap = None
    if curve is not None:
        r, p, ap, _ = _curve_fields(curve)
        r = np.concatenate([[0.0], r]) if r.size else np.array([0.0, 0.0])
        p = np.concatenate([p[:1], p]) if p.size else np.array([0.0, 0.0])
        ax.step(r, p, where="pre", color="#1f77b4", linewidth=2.0, label=f"precision-recall (AP {_num(ap)})")
    if precision is not None and recall is not None:
        ax.plot([recall], [precision], "o", markersize=11, color=OPERATING_POINT_COLOR,
                label=f"alarm at score >= {threshold:.3f}: precision {precision:.3f}, recall {recall:.3f}")
    if curve is None and n == 0:
        ax.text(0.5, 0.5, "no fall box in this set: nothing to measure", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    alarms = int(fall["tp"]) + int(fall["fp"])
    title = (f"Fall '{name}': AP {_num(ap)} on {n} fall boxes; alarm at score >= {threshold:.3f}: "
             f"precision {_num(precision)} ({alarms} alarms), recall {_num(recall)} ({fall['tp']} of {n})")
    ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=9)
    return _save(fig, path, title)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Draws a confusion matrix, coloured by row-normalised rate, with counts in the cells.

    Args:
        cm: ``(K, K)`` counts, rows = true class, columns = predicted class.
        class_names: K names (labels are prefixed with the class index).
        path: PNG file to write.
        title: optional title (a default one states the normalisation).

    Returns:
        ``path``.
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix {cm.shape} does not match {k} class names")
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(support[:, None] > 0, cm / np.maximum(support[:, None], 1), np.nan)

    side = max(5.0, 0.55 * k + 3.0)
    fig = _new_figure(side + 2.5, side)
    ax = fig.add_subplot(1, 1, 1)
    cmap = _cmap("Blues").with_extremes(bad="#eeeeee")  # grey: rows without ground truth
    im = ax.imshow(np.ma.masked_invalid(rate), cmap=cmap, vmin=0.0, vmax=1.0)
    cbar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label("fraction of the true class (row)")

    font = 9 if k <= 16 else 7
    for i in range(k):
        for j in range(k):
            if cm[i, j] == 0:
                continue
            dark = rate[i, j] > 0.55
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=font,
                    color="white" if dark else "black", fontweight="bold" if i == j else "normal")
    labels = [f"{i} {name}" for i, name in enumerate(class_names)]
    ax.set_xticks(range(k))
    ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
    ax.set_yticks(range(k))
    ax.set_yticklabels([f"{lab} (n={n})" for lab, n in zip(labels, support)], fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    # Thin grid between cells makes long rows easier to follow.
    ax.set_xticks(np.arange(-0.5, k, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, k, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else float("nan")
    ax.set_title(title or f"Confusion matrix ({total} boxes, top-1 {acc:.3f}); colour = row-normalised")
    return _save(fig, path)


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name].copy()


def _curve_fields(curve: Any) -> tuple[np.ndarray, np.ndarray, float | None, int | None]:
    if isinstance(curve, PRCurve):
        return curve.recall, curve.precision, curve.ap, curve.num_gt
    return (
        np.asarray(curve["recall"], dtype=np.float64),
        np.asarray(curve["precision"], dtype=np.float64),
        curve.get("ap"),
        curve.get("num_gt"),
    )


def plot_pr_curves(curves: Mapping[str, Any], class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Draws the interpolated precision-recall curve of every class with ground truth.

    Args:
        curves: ``{class name: PRCurve or {"recall", "precision", "ap", "num_gt"}}``, as in
            ``metrics["pr_curves"]``; classes without ground truth are simply absent.
        class_names: K names, for a stable colour and order per class.
        path: PNG file to write.
        title: optional title.

    Returns:
        ``path``.
    """
    fig = _new_figure(11.0, 6.5)
    ax = fig.add_subplot(1, 1, 1)
    colours = _cmap("tab10")
    styles = ["-", "--", "-.", ":"]
    aps = []
    for idx, name in enumerate(class_names):
        if name not in curves or curves[name] is None:
            continue
        recall, precision, ap, num_gt = _curve_fields(curves[name])
        if ap is not None:
            aps.append(ap)
        # The envelope is constant on (recall[i-1], recall[i]]: a step curve from recall 0
        # that ends at the last recall reached (no drop to zero: 14 of them clutter the axis).
        r = np.concatenate([[0.0], recall]) if recall.size else np.array([0.0, 0.0])
        p = np.concatenate([precision[:1], precision]) if precision.size else np.array([0.0, 0.0])
        label = f"{idx} {name}  AP {'-' if ap is None else f'{ap:.3f}'}" + ("" if num_gt is None else f"  n={num_gt}")
        # tab10 hues are far apart; classes 10+ reuse them dashed.
        ax.step(r, p, where="pre", color=colours(idx % 10), linestyle=styles[(idx // 10) % len(styles)],
                linewidth=1.8, label=label)
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (interpolated)")
    ax.grid(alpha=0.3)
    mean = f"{np.mean(aps):.3f}" if aps else "-"
    ax.set_title(title or f"Frame-level precision-recall per class (mAP {mean} over {len(aps)} classes)")
    if aps or curves:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    else:
        ax.text(0.5, 0.5, "no class has ground truth", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)
