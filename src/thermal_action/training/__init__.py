"""Training on Lightning: the training system, data module, losses, schedules.

Entry points (the package imports nothing, so importing it does not pull in Lightning)::

    train.train(cfg, out_dir, resume=False) -> TrainResult
    evaluate.evaluate_checkpoint(checkpoint, data_root, ann_file, out_dir, detections=None, overrides=None) -> dict
    pretrain.pretrain(cfg, recordings, out_dir)

Where things are: :mod:`.system` (the Lightning module: loss, optimiser, logging),
:mod:`.datamodule` (datasets and loaders), :mod:`.losses`, :mod:`.schedule` (optimiser and
learning-rate schedule), :mod:`.precision`, :mod:`.records` (validation prediction records)
and :mod:`.synthetic` (synthetic data for a run without a dataset).

Checkpoints are read by :mod:`thermal_action.models.checkpoint` (below training and
inference, so serving never imports the trainer).
"""
