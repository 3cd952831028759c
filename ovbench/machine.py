"""Which machine a figure came from, in one line stored with every trial and checkpoint record.

Why more than "cpu, 2 cores": on CPU the same seed gives another model on another processor or
thread count (issue 19: 1.7 points between two machines, 2.6-3.2 between 1 and 2 threads). The
processor model, the instruction set PyTorch dispatches its kernels to (AVX2, AVX-512) and the
thread count are what changes the order of float operations; AMX is marked too, as a cautious split
(oneDNN uses it for bf16/int8 products, which fp32 training does not ask for). Two trials whose lines
differ are not comparable seed for seed; equal lines are necessary, not proof, for that.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

CPUINFO = Path("/proc/cpuinfo")


def read_cpuinfo() -> str:
    """``/proc/cpuinfo`` ("" where there is none: not Linux)."""
    try:
        return CPUINFO.read_text(errors="replace")
    except OSError:
        return ""


def cpu_model_name(cpuinfo: str) -> str:
    """The first ``model name`` of a ``/proc/cpuinfo`` text; the platform's processor or machine name
    where there is none (not Linux, or a CPU such as ARM's that does not report one)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown cpu"


def cpu_flags(cpuinfo: str) -> set:
    """The first ``flags`` line of a ``/proc/cpuinfo`` text (x86; ARM's ``Features`` too), as a set."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def simd_level(capability: str, flags: set) -> str:
    """PyTorch's dispatch level (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512...)
    plus ``+AMX`` where the CPU offers AMX tiles, which oneDNN uses for bf16/int8 matrix products."""
    return capability + ("+AMX" if "amx_tile" in flags else "")


def describe_device(threads: Optional[int] = None) -> str:
    """``cuda: <name of this process's GPU>`` or ``cpu (<model>, <machine> <simd>, N cores, torch
    threads=T)``; ``threads`` defaults to ``torch.get_num_threads()`` now. How many GPUs or processes a
    run used is recorded beside it (a trial's ``processes``), not here, so that one GPU model gives one
    line whatever node it sits in."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(torch.cuda.current_device())}"
    threads = torch.get_num_threads() if threads is None else threads
    cpuinfo = read_cpuinfo()
    simd = simd_level(torch.backends.cpu.get_cpu_capability(), cpu_flags(cpuinfo))
    return (f"cpu ({cpu_model_name(cpuinfo)}, {platform.machine()} {simd}, {os.cpu_count()} cores, "
            f"torch threads={threads})")
