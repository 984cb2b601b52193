"""The oneDNN ISA cap: set only on AMX CPUs, never over the user's choice; bf16 convs survive."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from thermal_action.models import cpu_workarounds


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


_CONV_SCRIPT = """
import torch
import thermal_action.models  # applies the cap
torch.set_num_threads(1)
conv = torch.nn.Conv3d(24, 16, 1, bias=False)
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
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    env["MALLOC_CHECK_"] = "3"  # glibc aborts at the first sign of heap corruption
    proc = subprocess.run([sys.executable, "-c", _CONV_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-500:]
