"""SlowFast action detector: backbone variants, RoIAlign, action head, interaction, builder.

Where things are: :mod:`.build` (:func:`~.build.build_model`, the one place a config becomes
a model), :mod:`.variants` (``VARIANTS``, one named function per variant), :mod:`.backbone`,
:mod:`.head`, :mod:`.interaction`, :mod:`.feature_bank`, :mod:`.room` and :mod:`.tubes` (the
parts), :mod:`.detector` (:class:`~.detector.ActionDetector`, the parts wired together),
:mod:`.ensemble`, :mod:`.checkpoint` (reading checkpoints), :mod:`.convert` and
:mod:`.pretrained` (published weights), :mod:`.ops` (CPU kernels).
"""
