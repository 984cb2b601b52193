"""Evaluation: frame-mAP (AVA protocol) and classification metrics, evaluation files, plots.

Works on plain arrays, JSON prediction records and detections files (:mod:`.detections`), so training, ``thermal-action evaluate``
and the benchmarks share it. Plots are imported lazily (matplotlib) by
:func:`write_evaluation` or from :mod:`thermal_action.evaluation.plots`.
"""

from thermal_action.evaluation.detections import (
    DetectionsFile,
    ImageDetections,
    RawDetection,
    read_detections,
    read_detections_file,
)
from thermal_action.evaluation.io import (
    EvaluationFiles,
    format_metrics_table,
    make_prediction_records,
    read_metrics,
    read_predictions,
    write_evaluation,
    write_predictions,
)
from thermal_action.evaluation.frame_ap import (
    FrameAPResult,
    GroundTruthFrame,
    PRCurve,
    average_precision,
    class_report,
    confusion_matrix,
    frame_ap_per_class,
    match_boxes,
    precision_recall_envelope,
)
from thermal_action.evaluation.metrics import choose_fall_threshold, compute_metrics
from thermal_action.evaluation.records import as_ground_truth, check_prediction

__all__ = [
    "choose_fall_threshold",
    "DetectionsFile",
    "EvaluationFiles",
    "FrameAPResult",
    "GroundTruthFrame",
    "ImageDetections",
    "PRCurve",
    "RawDetection",
    "as_ground_truth",
    "average_precision",
    "check_prediction",
    "class_report",
    "compute_metrics",
    "confusion_matrix",
    "format_metrics_table",
    "frame_ap_per_class",
    "make_prediction_records",
    "match_boxes",
    "precision_recall_envelope",
    "read_detections",
    "read_detections_file",
    "read_metrics",
    "read_predictions",
    "write_evaluation",
    "write_predictions",
]
