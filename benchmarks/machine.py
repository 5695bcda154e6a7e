"""One line about the machine a benchmark ran on: CPU model, the flags that change its speed and its
last digits (bfloat16 and AVX-512 units), cores, torch and its threads. Every benchmark prints it first."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu() -> tuple[str, set[str]]:
    """The CPU's model name and its flags, from /proc/cpuinfo where there is one."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return model, flags


def describe() -> str:
    import torch

    model, flags = cpu()
    shown = " ".join(f for f in FLAGS if f in flags) or "none of " + ", ".join(FLAGS)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", CUDA {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"machine: {model} (flags: {shown}), {cores} cores{gpu}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")

if __name__ == "__main__":
    print(describe())
