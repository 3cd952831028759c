"""The machine line stored with every trial: it must tell apart what changes a seed's numbers (the
processor, its instruction set, the thread count)."""
from __future__ import annotations

import os

import torch

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


def test_a_cpuinfo_without_a_model_name_falls_back_to_the_platform():
    assert cpu_model_name("processor : 0\n")  # never empty
    assert cpu_flags("processor : 0\n") == set()


def test_simd_level_marks_amx():
    assert simd_level("AVX512", {"avx512f", "amx_tile"}) == "AVX512+AMX"
    assert simd_level("AVX2", {"avx2"}) == "AVX2"


def test_describe_device_names_cores_threads_and_dispatch_level():
    line = describe_device(threads=3)
    if torch.cuda.is_available():
        assert line.startswith("cuda: ")
        return
    assert line.startswith("cpu (") and f"{os.cpu_count()} cores" in line and "torch threads=3" in line
    assert torch.backends.cpu.get_cpu_capability() in line
    assert describe_device(threads=1) != line  # another thread count is another machine line
