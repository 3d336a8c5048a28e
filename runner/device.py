"""Which chip a run uses, in which number format, and what the machine is (for metrics.json)."""

import os
import platform
from pathlib import Path

import torch

from data import DataError

# what Linux says about the CPU (its model name, its flags); empty elsewhere
CPUINFO = Path("/proc/cpuinfo").read_text() if os.path.isfile("/proc/cpuinfo") else ""


def pick_device(choice):
    """--device auto: a CUDA GPU, else an Apple GPU (mps), else the CPU."""
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if (choice == "cuda" and not torch.cuda.is_available()) or (choice == "mps" and not mps):
        raise DataError(f"--device {choice}: PyTorch sees no such GPU here; use --device auto or cpu")
    return torch.device(choice)


def native_bf16(device):
    """Whether the chip computes in bfloat16 natively: recent CUDA GPUs; CPUs whose flags (Linux names them in
    /proc/cpuinfo) include AVX512-BF16 or AMX-BF16. Elsewhere float32 is the safe choice."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and ("avx512_bf16" in CPUINFO or "amx_bf16" in CPUINFO)


def machine_info(device):
    names = [line.split(":", 1)[1].strip() for line in CPUINFO.splitlines() if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()  # Linux names the model; else this
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
