"""What machine a benchmark ran on: the one CPU description every script in ``benchmarks/`` prints.

The CPU is read by :func:`thermal_action.training.precision.cpu_info` (model name and ISA
flags from ``/proc/cpuinfo``, with a fallback where it is absent), the same reading that
chooses ``trainer.precision=auto``, so a table and a training run name the CPU alike.
"""

from __future__ import annotations

from typing import Any


def cpu_description() -> dict[str, Any]:
    """``{"cpu", "isa_flags", "logical_cpus", "torch"}``: the CPU's model name, the ISA flags
    that matter for these kernels (AVX*, AMX*, FMA, ...), its logical CPUs and the torch version."""
    import torch

    from thermal_action.training.precision import cpu_info

    return {**cpu_info().describe(), "torch": torch.__version__}


def describe_line(desc: dict[str, Any], threads: int | None = None) -> str:
    """One Markdown-ready line: ``AMD EPYC (2 logical CPUs; avx2, fma, ...), torch 2.13, 2 threads``."""
    flags = ", ".join(desc["isa_flags"]) or "no AVX/AMX flags reported"
    line = f"{desc['cpu']} ({desc['logical_cpus']} logical CPUs; {flags}), torch {desc['torch']}"
    return line + (f", {threads} thread{'s' * (threads != 1)}" if threads else "")
