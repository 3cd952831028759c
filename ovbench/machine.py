"""Which machine a figure came from, in one line stored with every trial and checkpoint record.

Why more than "cpu, 2 cores": on CPU the same seed gives another model on another processor or
thread count (issue 19: 1.7 points between two machines, 2.6-3.2 between 1 and 2 threads), and
what decides the floating-point path is the instruction set PyTorch and oneDNN dispatch to (AVX2,
AVX-512, AMX) and the thread count. Two trials whose lines differ are not comparable seed for seed.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

CPUINFO = Path("/proc/cpuinfo")


def cpu_model_name(cpuinfo: Optional[str] = None) -> str:
    """The first ``model name`` of ``/proc/cpuinfo`` (or of the given text); the platform's
    processor or machine name where there is none (not Linux, or a virtual CPU that hides it)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown cpu"


def cpu_flags(cpuinfo: Optional[str] = None) -> set:
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def simd_level(capability: str, flags: set) -> str:
    """PyTorch's dispatch level (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512...)
    plus ``+AMX`` where the CPU offers AMX tiles, which oneDNN uses for bf16/int8 matrix products."""
    return capability + ("+AMX" if "amx_tile" in flags else "")


def describe_device(threads: Optional[int] = None) -> str:
    """``cuda: <name> (xN)`` or ``cpu (<model>, <machine> <simd>, N cores, torch threads=T)``;
    ``threads`` defaults to ``torch.get_num_threads()`` now."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    threads = torch.get_num_threads() if threads is None else threads
    simd = simd_level(torch.backends.cpu.get_cpu_capability(), cpu_flags())
    return (f"cpu ({cpu_model_name()}, {platform.machine()} {simd}, {os.cpu_count()} cores, "
            f"torch threads={threads})")
