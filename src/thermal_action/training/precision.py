"""Which numeric precision a run trains in, chosen for the hardware it runs on.

``trainer.precision`` is passed to Lightning after :func:`resolve_precision` has looked at
the machine:

- on a CUDA GPU, ``auto`` is ``bf16-mixed`` where the GPU supports bf16, else ``32-true``;
- on a CPU, ``auto`` is ``bf16-mixed`` only where the CPU reports bf16 instructions
  (:func:`cpu_has_bf16`: AVX512-BF16, AMX or Arm's BF16) *and* a short probe
  (:func:`probe_autocast`, well under a second) shows bf16 autocast clearly faster than
  fp32 here; else ``32-true``. One log line says what was chosen and the measured ratio;
- an explicit ``bf16-mixed`` (or ``16-mixed``) on a CPU without those instructions, or
  where the probe shows it slower, is done as asked, with a warning naming the slowdown
  before training starts.

Without bf16 instructions, bf16 is a trap: oneDNN emulates it, and a 3D convolution runs
hundreds of times slower than in fp32. With them, the flags are still not enough: each new
input shape (the number of boxes changes every batch) costs kernel generation, so a
fixed-shape micro-benchmark that is faster in bf16 can train slower. So the probe times a few
steps of thin 3D convolutions over two shapes, the second one new to the kernels, and
``auto`` wants a clear margin (:data:`AUTO_MIN_SPEEDUP`). The measurements behind this are in
the documentation's benchmarks ("Behind the CPU code paths").
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

#: CPU flags (``/proc/cpuinfo``) that mean bf16 arithmetic in hardware: x86 AVX512-BF16
#: and AMX, Arm's BF16 extension.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
#: The same for IEEE half precision (``16-mixed``).
FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16", "fphp", "asimdhp"})
#: ``auto`` picks bf16 on a CPU only when the probe's bf16 steps are at least this many
#: times faster than fp32: a smaller gain in the probe did not carry over to training
#: (measured: the documentation's benchmarks), and the margin keeps a shared machine's
#: timing noise from flipping the choice.
AUTO_MIN_SPEEDUP = 1.5
#: An explicit mixed precision on a CPU warns when its probe step takes more than this
#: share of the fp32 step (a 10% allowance for timing noise).
WARN_RATIO = 1.1
#: ``(R, 1, T, H, W)`` inputs of the probe (:func:`probe_network`): person tubes of 16
#: frames, 16x16 pixels, small enough that an fp32 step is short, so even a bf16 step
#: hundreds of times slower ends within the probe's time cap. The second shape is new to the
#: kernels, as every batch with another number of boxes is in training.
PROBE_SHAPES = ((3, 1, 16, 16, 16), (2, 1, 16, 16, 16))


# ----------------------------------------------------------------------------- the CPU
@dataclass(frozen=True)
class CpuInfo:
    """What the CPU says about itself.

    Attributes:
        name: model name (``/proc/cpuinfo``), else ``platform.processor()`` or the machine type.
        flags: ISA feature flags, lower case (x86 ``flags``, Arm ``Features``); where
            ``/proc/cpuinfo`` is absent, the ones implied by PyTorch's CPU capability
            (``avx2``/``avx512f``; never a bf16 flag, so ``auto`` stays fp32 there).
        logical_cpus: ``os.cpu_count()``.
        source: where the flags came from: ``"/proc/cpuinfo"`` or ``"torch"``.
    """

    name: str
    flags: frozenset[str] = field(default_factory=frozenset)
    logical_cpus: int | None = None
    source: str = "/proc/cpuinfo"

    def isa_flags(self) -> list[str]:
        """The flags that matter for these kernels (AVX*, AMX*, FMA, Arm BF16/SVE), sorted."""
        keep = ("avx", "amx", "fma", "bf16", "sve", "asimd", "fphp")
        return sorted(f for f in self.flags if f.startswith(keep))

    def describe(self) -> dict[str, Any]:
        """``{"cpu", "isa_flags", "logical_cpus"}`` for logs and benchmark tables."""
        return {"cpu": self.name, "isa_flags": self.isa_flags(), "logical_cpus": self.logical_cpus}


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The first processor's model name and flags in ``/proc/cpuinfo`` text ("" / empty if absent)."""
    name, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.lower().split())
        if name and flags:
            break
    return name, flags


def _torch_capability_flags() -> frozenset[str]:
    """Flags implied by the CPU capability PyTorch detected (``"AVX512"``, ``"AVX2"``, ...)."""
    try:
        cap = torch.backends.cpu.get_cpu_capability().lower()
    except (AttributeError, RuntimeError):
        return frozenset()
    if cap.startswith("avx512"):
        return frozenset({"avx2", "fma", "avx512f"})
    if cap.startswith("avx2"):
        return frozenset({"avx2", "fma"})
    return frozenset()


def read_cpu_info(path: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """The CPU's name and flags from ``path``, with a fallback where it is absent (macOS, Windows)."""
    fallback_name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        name, flags = parse_cpuinfo(Path(path).read_text())
    except OSError:
        name, flags = "", frozenset()
    if flags:
        return CpuInfo(name or fallback_name, flags, os.cpu_count(), str(path))
    return CpuInfo(name or fallback_name, _torch_capability_flags(), os.cpu_count(), "torch")


@functools.cache
def cpu_info() -> CpuInfo:
    """:func:`read_cpu_info` of this machine, read once per process."""
    return read_cpu_info()


def cpu_has_bf16(flags: Iterable[str]) -> bool:
    """Whether the flags report bf16 arithmetic in hardware (:data:`BF16_FLAGS`)."""
    return not BF16_FLAGS.isdisjoint(flags)


def cpu_has_fp16(flags: Iterable[str]) -> bool:
    """Whether the flags report fp16 arithmetic in hardware (:data:`FP16_FLAGS`)."""
    return not FP16_FLAGS.isdisjoint(flags)


# ----------------------------------------------------------------------------- the probe
@dataclass(frozen=True)
class ProbeResult:
    """fp32 against autocast on the probe's Conv3d training steps (:func:`probe_autocast`).

    Attributes:
        dtype: the autocast dtype, ``"bfloat16"`` or ``"float16"``.
        fp32_ms: mean milliseconds per fp32 step.
        mixed_ms: mean milliseconds per autocast step; a lower bound when ``capped``.
        capped: the autocast side was stopped early, being clearly slower (or its warm-up
            step alone ran past the time cap).
        threads: torch intra-op threads it ran on.
    """

    dtype: str
    fp32_ms: float
    mixed_ms: float
    capped: bool = False
    threads: int = 1

    @property
    def ratio(self) -> float:
        """Autocast time over fp32 time: below 1 autocast is faster, above 1 slower."""
        return self.mixed_ms / self.fp32_ms if self.fp32_ms > 0 else float("inf")

    def summary(self) -> str:
        """E.g. ``"bf16 step 0.41x the fp32 step (2.1 vs 5.2 ms, 2 threads)"``."""
        bound = "at least " if self.capped else ""
        short = {"bfloat16": "bf16", "float16": "fp16"}.get(self.dtype, self.dtype)
        return (f"{short} step {bound}{self.ratio:.2f}x the fp32 step "
                f"({self.mixed_ms:.1f} vs {self.fp32_ms:.1f} ms, {self.threads} thread{'s' * (self.threads != 1)})")


def probe_network(channels_last: bool = True) -> torch.nn.Sequential:
    """The probe's model: three 3x3x3 conv + BN + ReLU layers, 1 -> 8 -> 16 -> 32 channels.

    The layer class of the CPU models (``crop_cnn``'s first three layers, the compact
    SlowFasts' fast pathway): thin channels, where bf16's wider arithmetic gains least and
    autocast's casts cost most. A single wide conv (16 -> 32 channels alone) read 0.6-0.9x
    on this project's AVX512-BF16 CPU while training ``cpu_default`` in bf16 was no faster.
    """
    from torch import nn

    layers: list[nn.Module] = []
    for c_in, c_out, stride in ((1, 8, 1), (8, 16, (1, 2, 2)), (16, 32, 1)):
        layers += [nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU()]
    net = nn.Sequential(*layers)
    return net.to(memory_format=torch.channels_last_3d) if channels_last else net


def probe_autocast(dtype: torch.dtype = torch.bfloat16, *, repeats: int = 4, channels_last: bool = True,
                   max_ratio: float = 3.0, max_seconds: float = 2.0,
                   shapes: tuple[tuple[int, ...], ...] = PROBE_SHAPES) -> ProbeResult:
    """Times training steps of :func:`probe_network` in fp32 and under CPU autocast to ``dtype``.

    After one untimed step of each on the first shape, ``repeats`` rounds over ``shapes``
    alternate an fp32 and an autocast step on the same input, so a drifting load on a
    shared machine hits both alike; the second shape of the first round is new to the
    kernels, so per-shape kernel generation is counted (the ratio is of total times, not
    a median that would hide it). It stops early once the autocast side has taken
    ``max_ratio`` times the fp32 time so far (``capped``: the ratio is then a lower bound),
    or once the whole probe has run ``max_seconds``: a CPU that emulates bf16 costs about
    a second here, not minutes. On the current torch threads.

    Args:
        dtype: ``torch.bfloat16`` or ``torch.float16``.
        repeats: rounds over ``shapes``.
        channels_last: channels-last-3d tensors, as ``trainer.channels_last`` trains.
        max_ratio: stop once the autocast side passes this multiple of the fp32 time.
        max_seconds: stop after the pair that passes this wall time (warm-ups included).
        shapes: ``(R, 1, T, H, W)`` inputs.

    Returns:
        The mean milliseconds per step of each side.
    """
    from thermal_action.models.ops.cpu_workarounds import cap_onednn_isa

    cap_onednn_isa()  # the probe must run the kernels training will run (and not the unsafe AMX ones)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    net = probe_network(channels_last)
    inputs = [torch.randn(s, generator=gen).contiguous(memory_format=fmt) for s in shapes]

    def step(x: torch.Tensor, mixed: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=mixed):
            y = net(x)  # (R, 32, T, H/2, W/2)
        y.float().square().mean().backward()
        net.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    start = time.perf_counter()
    step(inputs[0], False)
    mixed_warmup = step(inputs[0], True)
    fp32_s = mixed_s = 0.0
    steps, capped = 0, time.perf_counter() - start > max_seconds
    pairs = [] if capped else [x for _ in range(repeats) for x in inputs]
    for x in pairs:
        fp32_s += step(x, False)
        mixed_s += step(x, True)
        steps += 1
        if mixed_s > max_ratio * fp32_s:  # clearly slower: the ratio so far is a lower bound
            capped = steps < len(pairs)
            break
        if time.perf_counter() - start > max_seconds:  # a slow or busy machine: the pairs so far decide
            break
    if steps == 0:  # the untimed autocast warm-up alone ran past the budget
        fp32_ms, mixed_ms = 1000 * step(inputs[0], False), 1000 * mixed_warmup
    else:
        fp32_ms, mixed_ms = 1000 * fp32_s / steps, 1000 * mixed_s / steps
    return ProbeResult(str(dtype).removeprefix("torch."), round(fp32_ms, 3), round(mixed_ms, 3), capped,
                       torch.get_num_threads())


# ----------------------------------------------------------------------------- the choice
@dataclass(frozen=True)
class PrecisionChoice:
    """What :func:`resolve_precision` chose and why (recorded in the run directory).

    Attributes:
        requested: ``trainer.precision`` as configured.
        precision: what Lightning is given.
        reason: one sentence, as logged.
        device: ``"cuda"``, ``"cpu"`` or the accelerator's name.
        probe: the CPU probe's timings, when one ran.
        cpu: :meth:`CpuInfo.describe` on a CPU, else None.
        warning: the warning given (an explicit choice measured slower), else None.
    """

    requested: str
    precision: str
    reason: str
    device: str
    probe: ProbeResult | None = None
    cpu: dict[str, Any] | None = None
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the probe with its ratio)."""
        probe = None
        if self.probe is not None:
            probe = {**self.probe.__dict__, "ratio": round(self.probe.ratio, 3)}
        return {"requested": self.requested, "precision": self.precision, "reason": self.reason,
                "device": self.device, "probe": probe, "cpu": self.cpu, "warning": self.warning}


def _device(accelerator: str) -> str:
    cuda = torch.cuda.is_available()
    if accelerator == "cpu" or (accelerator == "auto" and not cuda):
        return "cpu"
    if accelerator in ("auto", "gpu", "cuda") and cuda:
        return "cuda"
    return accelerator


def resolve_precision(precision: str, accelerator: str, *, flags: Iterable[str] | None = None,
                      probe: Callable[[torch.dtype], ProbeResult] | None = None) -> PrecisionChoice:
    """The Lightning precision for ``trainer.precision`` on this machine (see the module docstring).

    Args:
        precision: ``trainer.precision``: ``"auto"``, ``"32-true"``, ``"bf16-mixed"``, ...
        accelerator: ``trainer.accelerator``.
        flags: the CPU's ISA flags; None reads them (:func:`cpu_info`). Tests pass fakes.
        probe: ``dtype -> ProbeResult``; None runs :func:`probe_autocast`. Tests pass fakes.

    Returns:
        The choice, already logged (and warned about where an explicit one is slower).
    """
    device = _device(accelerator)
    if device == "cuda":
        if precision == "auto":
            bf16 = torch.cuda.is_bf16_supported()
            choice = PrecisionChoice(precision, "bf16-mixed" if bf16 else "32-true",
                                     "CUDA GPU with bf16" if bf16 else "CUDA GPU without bf16", device)
            log.info("trainer.precision=auto: %s (%s)", choice.precision, choice.reason)
            return choice
        return PrecisionChoice(precision, precision, "as configured", device)
    if device != "cpu":
        chosen = "32-true" if precision == "auto" else precision
        return PrecisionChoice(precision, chosen, f"{device}: no hardware check, fp32 unless asked", device)

    info = cpu_info()
    cpu = info.describe()
    flags = frozenset(info.flags if flags is None else flags)
    run_probe = probe or probe_autocast
    if precision == "auto":
        if not cpu_has_bf16(flags):
            choice = PrecisionChoice(precision, "32-true", "the CPU reports no bf16 instructions "
                                     f"(none of {', '.join(sorted(BF16_FLAGS))})", device, cpu=cpu)
        else:
            result = run_probe(torch.bfloat16)
            faster = result.ratio * AUTO_MIN_SPEEDUP <= 1 and not result.capped
            verdict = f"at least {AUTO_MIN_SPEEDUP}x faster" if faster else f"not {AUTO_MIN_SPEEDUP}x faster"
            choice = PrecisionChoice(precision, "bf16-mixed" if faster else "32-true",
                                     f"the CPU has bf16 and the probe's {result.summary()}: {verdict}",
                                     device, result, cpu)
        log.info("trainer.precision=auto on %s: %s, as %s", info.name, choice.precision, choice.reason)
        return choice

    mixed = {"bf16": torch.bfloat16, "16": torch.float16}.get(precision.split("-")[0])
    if mixed is None:  # 32-true, 64-true, ...: nothing to check
        return PrecisionChoice(precision, precision, "as configured", device, cpu=cpu)
    has = cpu_has_bf16(flags) if mixed is torch.bfloat16 else cpu_has_fp16(flags)
    result = run_probe(mixed)
    warning = None
    if not has or result.ratio > WARN_RATIO:
        bound = "at least " if result.capped else ""
        why = "this CPU reports no instructions for it" if not has else "the probe measured it slower"
        if result.ratio > 1:
            outlook = f"so training may take {bound}{result.ratio:.1f}x as long as trainer.precision=32-true"
        else:
            outlook = "not slower in the probe, but emulated instructions are usually much slower in training"
        warning = (f"trainer.precision={precision} on {info.name}: {why}; the probe's {result.summary()}, "
                   f"{outlook} (training continues as asked)")
        log.warning("%s", warning)
    else:
        log.info("trainer.precision=%s on %s: the probe's %s", precision, info.name, result.summary())
    reason = f"as configured; the probe's {result.summary()}"
    return PrecisionChoice(precision, precision, reason, device, result, cpu, warning)


__all__ = [
    "AUTO_MIN_SPEEDUP", "BF16_FLAGS", "FP16_FLAGS", "PROBE_SHAPES", "WARN_RATIO", "CpuInfo", "PrecisionChoice",
    "ProbeResult", "cpu_has_bf16", "cpu_has_fp16", "cpu_info", "parse_cpuinfo", "probe_autocast", "read_cpu_info",
    "resolve_precision",
]
