"""The machine line stored with every trial: it must tell apart what changes a seed's numbers (the
processor, its instruction set, the thread count)."""
from __future__ import annotations

import os

import torch

from ovbench import machine
from ovbench.machine import cpu_flags, cpu_model_name, describe_device, simd_level

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R)   Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
"""


def test_model_name_and_flags_are_read_from_cpuinfo():
    assert cpu_model_name(CPUINFO) == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "amx_tile"} <= cpu_flags(CPUINFO)
    assert "amx_tile" not in cpu_flags("flags : fpu avx2\n")
    assert "sve" in cpu_flags("Features\t: fp asimd sve\n")  # ARM's name for the line


def test_a_cpuinfo_without_a_model_name_falls_back_to_the_platform(monkeypatch):
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    assert cpu_model_name("processor : 0\nBogoMIPS : 50.00\n") == "aarch64"
    assert cpu_flags("processor : 0\n") == set()


def test_simd_level_marks_amx():
    assert simd_level("AVX512", {"avx512f", "amx_tile"}) == "AVX512+AMX"
    assert simd_level("AVX2", {"avx2"}) == "AVX2"


def test_describe_device_names_cores_threads_and_dispatch_level(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(machine, "read_cpuinfo", lambda: CPUINFO)
    line = describe_device(threads=3)
    assert line == (f"cpu (Intel(R) Xeon(R) Platinum 8480+, {machine.platform.machine()} "
                    f"{torch.backends.cpu.get_cpu_capability()}+AMX, {os.cpu_count()} cores, torch threads=3)")
    assert describe_device(threads=1) != line  # another thread count is another machine line


def test_a_gpu_is_named_by_this_process_device_alone(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"NVIDIA H200 #{i}")
    assert describe_device() == "cuda: NVIDIA H200 #3"
