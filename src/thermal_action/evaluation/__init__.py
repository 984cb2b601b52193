"""Evaluation: frame-mAP (AVA protocol) and classification metrics, evaluation files, plots.

Works on plain arrays, JSON prediction records and detections files (:mod:`.detections`), so training, ``thermal-action evaluate``
and the benchmarks share it. Plots are imported lazily (matplotlib) by
:func:`write_evaluation` or from :mod:`thermal_action.evaluation.plots`.

Where things are: :mod:`.frame_ap` (frame-mAP, precision-recall, confusion matrix),
:mod:`.metrics` (:func:`~.metrics.compute_metrics`, the fall threshold), :mod:`.records`
(prediction records as ground truth), :mod:`.detections` (detections files), :mod:`.io`
(evaluation and prediction files), :mod:`.events` (fall events) and :mod:`.plots`.
"""
