"""trainer.precision chosen for the hardware: every branch with faked CPU flags and probe timings."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from thermal_action.training import precision as P
from thermal_action.training.precision import (
    AUTO_MIN_SPEEDUP,
    CpuInfo,
    ProbeResult,
    cpu_has_bf16,
    parse_cpuinfo,
    read_cpu_info,
    resolve_precision,
)

AVX2_ONLY = {"sse4_2", "avx", "avx2", "fma"}  # the EPYC of the issue: no AVX-512, no bf16
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}
AMX = AVX512_BF16 | {"amx_bf16", "amx_tile", "amx_int8"}

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16
bugs\t\t: sysret_ss_attrs

processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes sha2 crc32 atomics fphp asimdhp sve bf16 i8mm
CPU implementer\t: 0x41
"""


class FakeProbe:
    """Returns fixed timings and records which dtypes were asked for (nothing is timed)."""

    def __init__(self, fp32_ms: float, mixed_ms: float, capped: bool = False):
        self.result = dict(fp32_ms=fp32_ms, mixed_ms=mixed_ms, capped=capped, threads=2)
        self.calls: list[torch.dtype] = []

    def __call__(self, dtype: torch.dtype) -> ProbeResult:
        self.calls.append(dtype)
        return ProbeResult(str(dtype).removeprefix("torch."), **self.result)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def cuda(monkeypatch):
    """A fake CUDA machine; ``cuda(bf16)`` sets whether its GPU supports bf16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def set_bf16(supported: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)

    return set_bf16


# ----------------------------------------------------------------------------- CPU description
def test_parse_cpuinfo_reads_the_first_processors_name_and_flags():
    name, flags = parse_cpuinfo(CPUINFO)
    assert name == "AMD EPYC 7B13"
    assert {"avx2", "fma", "avx512_bf16"} <= flags and "sysret_ss_attrs" not in flags


def test_parse_cpuinfo_reads_arm_features():
    name, flags = parse_cpuinfo(ARM_CPUINFO)
    assert name == "" and {"bf16", "sve", "asimdhp"} <= flags
    assert cpu_has_bf16(flags)


def test_read_cpu_info_from_a_file_and_its_isa_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = read_cpu_info(path)
    assert info.name == "AMD EPYC 7B13" and info.source == str(path)
    assert info.isa_flags() == ["avx", "avx2", "avx512_bf16", "avx512f", "fma"]
    assert info.describe()["isa_flags"] == info.isa_flags()


def test_read_cpu_info_falls_back_when_cpuinfo_is_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    info = read_cpu_info(tmp_path / "missing")
    assert info.name and info.source == "torch"
    assert info.flags == {"avx2", "fma"}
    assert not cpu_has_bf16(info.flags)  # unknown: never bf16 by default


@pytest.mark.parametrize("flags, has", [(AVX2_ONLY, False), (AVX512_BF16, True), (AMX, True), (set(), False)])
def test_cpu_has_bf16(flags, has):
    assert cpu_has_bf16(flags) is has


# ----------------------------------------------------------------------------- auto on a CPU
def test_auto_on_a_cpu_without_bf16_is_fp32_without_probing(no_cuda, caplog):
    probe = FakeProbe(5.0, 1.0)
    with caplog.at_level(logging.INFO, logger=P.__name__):
        choice = resolve_precision("auto", "cpu", flags=AVX2_ONLY, probe=probe)
    assert choice.precision == "32-true" and choice.device == "cpu"
    assert probe.calls == [] and choice.probe is None
    assert "no bf16 instructions" in choice.reason
    assert any("32-true" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("flags", [AVX512_BF16, AMX], ids=["avx512_bf16", "amx"])
def test_auto_on_a_bf16_cpu_picks_bf16_when_the_probe_is_clearly_faster(no_cuda, caplog, flags):
    probe = FakeProbe(10.0, 4.0)
    with caplog.at_level(logging.INFO, logger=P.__name__):
        choice = resolve_precision("auto", "auto", flags=flags, probe=probe)  # "auto" accelerator without CUDA
    assert choice.precision == "bf16-mixed" and probe.calls == [torch.bfloat16]
    assert choice.probe.ratio == pytest.approx(0.4)
    line = next(r.getMessage() for r in caplog.records if "trainer.precision=auto" in r.getMessage())
    assert "bf16-mixed" in line and "0.40x" in line


@pytest.mark.parametrize("mixed_ms", [7.0, 10.0, 30.0], ids=["1.4x-faster", "equal", "slower"])
def test_auto_on_a_bf16_cpu_stays_fp32_unless_the_probe_shows_a_clear_margin(no_cuda, mixed_ms):
    assert 10.0 / mixed_ms < AUTO_MIN_SPEEDUP
    choice = resolve_precision("auto", "cpu", flags=AMX, probe=FakeProbe(10.0, mixed_ms))
    assert choice.precision == "32-true" and "not" in choice.reason
    assert choice.warning is None  # auto never warns: it chose the fast one


def test_auto_stays_fp32_when_the_probe_was_cut_short(no_cuda):
    choice = resolve_precision("auto", "cpu", flags=AVX512_BF16, probe=FakeProbe(10.0, 7.0, capped=True))
    assert choice.precision == "32-true"


# ----------------------------------------------------------------------------- explicit on a CPU
def test_explicit_bf16_on_a_cpu_without_bf16_warns_with_the_slowdown_and_does_it(no_cuda, caplog):
    probe = FakeProbe(88.0, 18000.0, capped=True)  # the 200x, stopped early
    with caplog.at_level(logging.WARNING, logger=P.__name__):
        choice = resolve_precision("bf16-mixed", "cpu", flags=AVX2_ONLY, probe=probe)
    assert choice.precision == "bf16-mixed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0] == choice.warning
    assert "no instructions" in warnings[0] and "at least 204.5x" in warnings[0]


def test_explicit_bf16_without_bf16_flags_warns_even_when_the_probe_is_not_slower(no_cuda):
    choice = resolve_precision("bf16-mixed", "cpu", flags=AVX2_ONLY, probe=FakeProbe(10.0, 9.0))
    assert choice.precision == "bf16-mixed"
    assert "no instructions" in choice.warning and "usually much slower" in choice.warning
    assert "as long as" not in choice.warning


def test_explicit_bf16_on_a_bf16_cpu_measured_slower_warns(no_cuda, caplog):
    with caplog.at_level(logging.WARNING, logger=P.__name__):
        choice = resolve_precision("bf16-mixed", "cpu", flags=AMX, probe=FakeProbe(10.0, 25.0))
    assert choice.precision == "bf16-mixed"
    assert "measured it slower" in choice.warning and "2.5x" in choice.warning
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [choice.warning]


def test_explicit_bf16_on_a_bf16_cpu_measured_faster_is_quiet(no_cuda, caplog):
    with caplog.at_level(logging.WARNING, logger=P.__name__):
        choice = resolve_precision("bf16-mixed", "cpu", flags=AVX512_BF16, probe=FakeProbe(10.0, 5.0))
    assert choice.precision == "bf16-mixed" and choice.warning is None
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "0.50x" in choice.reason


def test_explicit_fp16_on_a_cpu_probes_fp16(no_cuda):
    probe = FakeProbe(10.0, 40.0)
    choice = resolve_precision("16-mixed", "cpu", flags=AMX, probe=probe)
    assert probe.calls == [torch.float16] and choice.precision == "16-mixed"
    assert "no instructions" in choice.warning  # AMX-BF16 is not fp16


@pytest.mark.parametrize("precision", ["32-true", "64-true", "32"])
def test_explicit_full_precision_on_a_cpu_is_passed_through_without_probing(no_cuda, precision):
    probe = FakeProbe(1.0, 1.0)
    choice = resolve_precision(precision, "cpu", flags=AVX2_ONLY, probe=probe)
    assert choice.precision == precision and probe.calls == [] and choice.warning is None


# ----------------------------------------------------------------------------- GPUs
@pytest.mark.parametrize("bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
@pytest.mark.parametrize("accelerator", ["auto", "gpu", "cuda"])
def test_auto_on_a_gpu_is_bf16_where_the_gpu_has_it(cuda, bf16, expected, accelerator):
    cuda(bf16)
    probe = FakeProbe(1.0, 1.0)
    choice = resolve_precision("auto", accelerator, flags=AVX2_ONLY, probe=probe)
    assert choice.precision == expected and choice.device == "cuda" and probe.calls == []


def test_explicit_precision_on_a_gpu_is_passed_through(cuda):
    cuda(False)
    choice = resolve_precision("16-mixed", "gpu", flags=AVX2_ONLY, probe=FakeProbe(1.0, 100.0))
    assert choice.precision == "16-mixed" and choice.warning is None and choice.probe is None


def test_a_cuda_machine_told_to_train_on_its_cpu_checks_the_cpu(cuda):
    cuda(True)
    choice = resolve_precision("auto", "cpu", flags=AVX2_ONLY, probe=FakeProbe(1.0, 1.0))
    assert choice.precision == "32-true" and choice.device == "cpu"


# ----------------------------------------------------------------------------- the record
def test_the_choice_is_json_with_the_probe_ratio(no_cuda):
    choice = resolve_precision("auto", "cpu", flags=AMX, probe=FakeProbe(10.0, 5.0))
    d = json.loads(json.dumps(choice.to_dict()))
    assert d["requested"] == "auto" and d["precision"] == "bf16-mixed"
    assert d["probe"]["ratio"] == 0.5 and d["probe"]["dtype"] == "bfloat16"
    assert set(d["cpu"]) == {"cpu", "isa_flags", "logical_cpus"}


def test_probe_result_summary_marks_a_lower_bound():
    r = ProbeResult("bfloat16", 2.0, 9.0, capped=True, threads=1)
    assert r.ratio == 4.5
    assert r.summary() == "bf16 step at least 4.50x the fp32 step (9.0 vs 2.0 ms, 1 thread)"


def test_probe_autocast_runs_and_stops_a_slow_side_early(monkeypatch):
    # Only that it runs and that the cap cuts the mixed side short: no timing is asserted
    # (whether the first probe hits its cap depends on the machine: bf16 may be 200x slower).
    r = P.probe_autocast(torch.bfloat16, repeats=1, shapes=((1, 1, 2, 4, 4), (2, 1, 2, 4, 4)))
    assert r.dtype == "bfloat16" and r.fp32_ms > 0 and r.mixed_ms > 0 and r.threads == torch.get_num_threads()
    stopped = P.probe_autocast(torch.bfloat16, repeats=3, max_seconds=0.0, shapes=((1, 1, 2, 4, 4),))
    assert stopped.capped and stopped.mixed_ms > 0


def test_cpu_info_describes_this_machine():
    info = P.cpu_info()
    assert isinstance(info, CpuInfo) and info.name
    assert P.cpu_info() is info  # read once
