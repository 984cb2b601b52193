"""Keeps oneDNN off the AMX kernels, whose bf16 3D convolutions corrupt memory here.

bf16 Conv3d forward/backward through oneDNN's AMX BRGEMM kernels corrupted the heap for
ordinary shapes (aborts and segfaults; the CPU, versions and shapes are in
docs/benchmarks.md, "Behind the CPU code paths"). Limiting oneDNN to AVX-512 with bf16
instructions (no AMX) avoids it, and fp32 is unaffected (oneDNN's fp32 kernels never use
AMX). So, unless the user chose an ISA, :func:`cap_onednn_isa` caps it before
oneDNN reads the setting (at its first primitive): ``build_model`` and every
:class:`~thermal_action.models.ops.conv.Conv3d` constructor call it, so it happens when a
model is built, before any of its convolutions runs, and importing the package changes
nothing. ``ONEDNN_MAX_CPU_ISA=ALL`` re-enables AMX.

:func:`reuse_freed_memory` is the second CPU setting: glibc's ``malloc`` hands every block
over 32 MB (and, after the first frees, smaller ones) back to the kernel when it is freed,
so each training step's activations arrive as fresh pages that fault in one by one. A
256x384 SlowFast-R50 step allocates and frees a few GB; keeping freed memory in the heap
for the next step makes it faster at the same peak RSS (docs/benchmarks.md, "Model cost").
``train`` applies it on CPU (``trainer.reuse_freed_memory``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SAFE_ISA = "AVX512_CORE_BF16"


@functools.cache
def _cpu_has_amx() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def cap_onednn_isa() -> bool:
    """Sets ``ONEDNN_MAX_CPU_ISA`` to :data:`SAFE_ISA` on AMX CPUs unless already set.

    Cheap and idempotent (the CPU is looked at once), so it is called whenever a model
    is built; it must run before the process's first oneDNN convolution to have effect.

    Returns:
        True when this call set the variable.
    """
    if "ONEDNN_MAX_CPU_ISA" in os.environ or "DNNL_MAX_CPU_ISA" in os.environ:
        return False
    if not _cpu_has_amx():
        return False
    os.environ["ONEDNN_MAX_CPU_ISA"] = SAFE_ISA
    log.info("AMX CPU: set ONEDNN_MAX_CPU_ISA=%s (bf16 AMX conv kernels corrupt memory; =ALL to override)", SAFE_ISA)
    return True


#: ``mallopt`` parameters (glibc ``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def reuse_freed_memory() -> bool:
    """Makes glibc keep freed memory for reuse: no ``mmap`` for large blocks, no trimming.

    Once per process (later calls return the first answer). Freed tensors then stay in
    the heap, so the next step's tensors of the same sizes reuse warm pages instead of
    faulting in new ones. Peak memory is unchanged (the same bytes are live at the peak);
    what changes is that the process does not give freed memory back to the system until
    it exits, which suits a training or benchmark process.

    Returns:
        True when both settings took effect (glibc on Linux); False elsewhere (musl,
        macOS, Windows), where nothing is changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if ok:
        log.info("glibc malloc: freed memory kept for reuse (no mmap, no trim)")
    return ok
