"""Pretrained-weight import: published SlowFast checkpoints mapped onto our modules.

Five checkpoint layouts load, recognised from the top-level key and the tensor names
(never from the file name):

======================  ==============  =====================================================
format                  top-level key   tensor names
======================  ==============  =====================================================
``alphaction``          ``model``       ``backbone.slow.res_nl1.res_0.btnk.conv1.conv.weight``
``pyslowfast``          ``model_state`` ``s2.pathway0_res0.branch2.a.weight``
``mmaction2``           ``state_dict``  ``backbone.slow_path.layer1.0.conv1.conv.weight``
``pytorchvideo``        ``model_state``  ``model.blocks.1.multipathway_blocks.0.res_blocks.0...``
                        or none
``thermal_action``      ``state_dict``  ``backbone.s2...`` (ours) or ``model.backbone.s2...``
                                        (a Lightning ``.ckpt`` of our training system)
======================  ==============  =====================================================

A ``.safetensors`` file (flat tensor names) is recognised by its names alone. Every
name is first mapped onto our PySlowFast-style names (``backbone.s{1..5}...``,
``backbone.s{1..4}_fuse...``, ``head.fc1/fc2/classifier``, ``head.interaction...``);
the rules are those of ``docs/checkpoint-naming.md``.

What is converted on the way:

* The stem convolutions of RGB checkpoints, ``(C, 3, t, 7, 7)``, become ``(C, 1, t, 7, 7)``
  by summing over the input channels (:func:`rgb_stem_to_thermal`): a grey image
  replicated to three channels gives the same response as the summed kernel on one.
* A model that reads the room's zone masks (``model.room`` with ``masks``) has ``1 + Z``
  input channels: a one-channel (or summed RGB) stem, or the crop CNN's first layer, gets
  zero weights for the zone channels, so it starts out computing what the file's did. A head
  with the room's zone features (or a tube's box size) beyond the file's ``fc1`` inputs gets
  zero weights for them the same way.
* The classifier is loaded only when its shape matches ours (same K and head width);
  otherwise it keeps the model's own initialisation. PySlowFast, MMAction2 and
  PyTorchVideo have a single linear projection on the 2304-d pooled feature (no
  fc1/fc2 MLP), so their heads never fit ours and are skipped; MMAction2's ``fc_cls``
  also has a background row 0. AlphAction's ``fc1``/``fc2`` MLP and its interaction
  structure load whenever the shapes match.
* FrozenBN checkpoints (AlphAction's published ones, Caffe2 conversions) have no
  ``num_batches_tracked``: reported, not an error.

Which of our variants matches which published layout
----------------------------------------------------
The backbone must have the file's depths, lateral kind and stem pooling, otherwise a
strict load fails with an error that names the file, the offending tensors and the
variants the file does fit:

=======================================  ======================================  ==================================
published layout                         variant (``models.variants``)         backbone options it implies
=======================================  ======================================  ==================================
AlphAction R50 4x16                      ``slowfast_r50_4x16_alphaction``        alpha 8, beta 1/8, depths 3-4-6-3,
(``alphaction_r50_4x16_*``)                                                      ``lateral="conv_bias"``, kernel 5,
                                                                                 ``stem_pool_padding=False``
AlphAction R101 8x8                      ``slowfast_r101_8x8_alphaction``        alpha 4, beta 1/8, depths
(``alphaction_r101_8x8_*``)                                                      3-4-23-3, same lateral and pool
PySlowFast / PyTorchVideo R50 4x16,      ``slowfast_r50_4x16``, ``_r50_8x8``,    ``lateral="conv_bn_relu"``, the
8x8, R101 8x8                            ``_r101_8x8`` when the lateral kernel   file's kernel (PySlowFast: 5 for
                                         matches                                 4x16 and 32x2, 7 for 8x8), padded
                                                                                 pool
MMAction2 with ``lateral_norm=True``     as PySlowFast (same maths)              ``conv_bn_relu``, the file's kernel
MMAction2 default (no lateral norm)      none registered: loads into a           ``lateral="conv"`` (no bias, BN or
                                         ``SlowFastBackbone(lateral="conv")``    ReLU), the file's kernel
=======================================  ======================================  ==================================

The ``_denseserial`` AlphAction files also fill ``head.interaction`` when the model is
built with ``interaction="denseserial"``; the published files are FrozenBN, the
``r101_8x8_baseline_16cls_bn`` one has trainable BN (with ``num_batches_tracked``).
Alpha (the lateral's temporal stride) is invisible in the weights: a 4x16 file also
loads into an 8x8 variant of the same depth, and the variant's alpha is what counts.

:func:`convert_checkpoint` resolves the variant itself when the asked-for one cannot
reproduce the file (``slowfast_r50_4x16`` + an AlphAction file ->
``slowfast_r50_4x16_alphaction``) and notes it in the report.

Loading is safe: ``torch.load(..., weights_only=True)`` (or safetensors), so a file
holding pickled Python objects is refused with an error, never executed.
The package, one file per step::

    formats.py   the layout names
    reading.py   read_checkpoint: weights_only / safetensors -> RawCheckpoint (flat tensors)
    naming.py    detect_format, map_key, map_checkpoint: their names -> ours (MappedCheckpoint)
    fitting.py   which variant reproduces the file (variant_fits, fitting_variants, resolve_variant)
    loading.py   load_pretrained: the mapped tensors into a model, with a LoadReport
    report.py    LoadReport and its entries

Conversion to our own format is :func:`thermal_action.models.convert.convert_checkpoint`.
"""
