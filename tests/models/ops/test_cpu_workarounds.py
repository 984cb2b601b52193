"""The oneDNN ISA cap: set only on AMX CPUs, never over the user's choice, when a model is built and not on
import; bf16 convs survive."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from thermal_action.models.ops import cpu_workarounds


def test_cap_respects_user_choice_and_cpu(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(cpu_workarounds, "_cpu_has_amx", lambda: False)
    assert not cpu_workarounds.cap_onednn_isa() and "ONEDNN_MAX_CPU_ISA" not in os.environ
    monkeypatch.setattr(cpu_workarounds, "_cpu_has_amx", lambda: True)
    assert cpu_workarounds.cap_onednn_isa()
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == cpu_workarounds.SAFE_ISA
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert not cpu_workarounds.cap_onednn_isa() and os.environ["ONEDNN_MAX_CPU_ISA"] == "ALL"


def test_building_a_conv_applies_the_cap_once(monkeypatch):
    from thermal_action.models.ops.conv import Conv3d

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(cpu_workarounds, "_cpu_has_amx", lambda: True)
    Conv3d(2, 3, 1)
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == cpu_workarounds.SAFE_ISA
    Conv3d(2, 3, 1)  # a second conv changes nothing
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == cpu_workarounds.SAFE_ISA


def _clean_env() -> dict[str, str]:
    """This environment without anything the package reads or writes."""
    return {k: v for k, v in os.environ.items()
            if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") and not k.startswith("THERMAL_ACTION_")}


# Pretends to be an AMX CPU (where the cap applies), imports every module of the package,
# then builds a model: only the build may set the cap. Lightning sets variables of its own
# on import (PYTORCH_NVML_BASED_CUDA_CHECK, TORCHINDUCTOR_CACHE_DIR), so it is imported first.
_IMPORT_SCRIPT = """
import os, pathlib, pkgutil, importlib
import lightning, torch
_read = pathlib.Path.read_text
pathlib.Path.read_text = lambda self, *a, **k: "flags: amx_bf16" if str(self) == "/proc/cpuinfo" else _read(self, *a, **k)
before = dict(os.environ)
import thermal_action
import thermal_action.models.build
for m in pkgutil.walk_packages(thermal_action.__path__, "thermal_action."):
    if not m.name.endswith(".__main__"):  # importing __main__ runs the program: not an import side effect
        importlib.import_module(m.name)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
assert not changed, changed
from thermal_action.config import ModelConfig
thermal_action.models.build.build_model(ModelConfig(variant="slowfast_tiny"), 3)
print(os.environ.get("ONEDNN_MAX_CPU_ISA"))
"""


def test_importing_the_package_leaves_the_environment_unchanged():
    proc = subprocess.run([sys.executable, "-c", _IMPORT_SCRIPT], env=_clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == cpu_workarounds.SAFE_ISA  # and building a model applied the cap


_CONV_SCRIPT = """
import torch
from thermal_action.models.ops.conv import Conv3d
torch.set_num_threads(1)
conv = Conv3d(24, 16, 1, bias=False)  # constructing it applies the cap
x = torch.randn(2, 24, 4, 160, 240, requires_grad=True)
for _ in range(2):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    y.float().sum().backward()
    junk = [torch.empty(1000 + 37 * k) for k in range(100)]
print("ok")
"""


def test_bf16_conv_that_corrupted_the_heap_on_amx_runs_cleanly():
    if not cpu_workarounds._cpu_has_amx():
        pytest.skip("no AMX on this CPU")
    env = _clean_env()
    env["MALLOC_CHECK_"] = "3"  # glibc aborts at the first sign of heap corruption
    proc = subprocess.run([sys.executable, "-c", _CONV_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-500:]


#: Allocates and frees a 64 MB tensor, then prints the bytes glibc keeps free in its heap
#: (``mallinfo2().fordblks``), with or without :func:`reuse_freed_memory` first.
_FREED_PROBE = r"""
import ctypes, sys
import torch
from thermal_action.models.ops import cpu_workarounds
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    print("no-mallinfo2"); sys.exit(0)
libc.mallinfo2.restype = MallInfo2
applied = cpu_workarounds.reuse_freed_memory() if sys.argv[1] == "reuse" else False
t = torch.ones(16 * 2**20)  # 64 MB: above glibc's largest mmap threshold (32 MB)
del t
print(int(applied), libc.mallinfo2().fordblks)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_reuse_freed_memory_keeps_a_freed_activation_in_the_heap():
    def probe(mode: str) -> tuple[int, int]:
        out = subprocess.run([sys.executable, "-c", _FREED_PROBE, mode], capture_output=True, text=True,
                             check=True).stdout.split()
        if out == ["no-mallinfo2"]:
            pytest.skip("glibc without mallinfo2")
        return int(out[0]), int(out[1])

    applied, kept = probe("reuse")
    if not applied:
        pytest.skip("not glibc: reuse_freed_memory changes nothing")
    _, kept_default = probe("system")
    # Kept for the next step's tensors, where by default the block went back to the system.
    assert kept >= 64 * 2**20 > kept_default
