"""Reading and checking datasets in the thermal dataset format (``docs/data-format.md``).

Where things are: :mod:`.hdf5` (recordings), :mod:`.packets` (dropped-packet repair),
:mod:`.annotations` (keyframes and boxes, converted once at load time), :mod:`.rooms` and
:mod:`.room_files` (room layouts), :mod:`.clips` and :mod:`.transforms` (clip sampling and
augmentation), :mod:`.dataset` (the training datasets), :mod:`.convert` (raw labelling-tool
annotations), :mod:`.validate` (``thermal-action validate``) and :mod:`.synth` (synthetic
data). Names are imported from their modules; the package imports nothing.
"""
