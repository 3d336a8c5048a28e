"""Which chip a run uses, in which number format, and what the machine is (for metrics.json)."""

import contextlib
import os
import platform

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


class DeviceError(Exception):
    """A --device the machine cannot give."""


def mps_available():
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(choice):
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: PyTorch sees no CUDA GPU here; use --device auto or cpu")
    if choice == "mps" and not mps_available():
        raise DeviceError("--device mps: this PyTorch has no Apple-silicon (MPS) support here; use --device auto or cpu")
    return torch.device(choice)


def describe_choice(device, choice):
    if choice != "auto":
        return "chosen with --device"
    return "auto: " + {"cuda": "CUDA GPU found", "mps": "Apple GPU found"}.get(device.type, "no CUDA or MPS GPU found")


def native_bf16(device):
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(check and check())
    return False  # mps: float32 is the safe choice


def pick_dtype(choice, device):
    if choice == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return getattr(torch, choice)


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def attention_kernel(device, cfg):
    """Which kernel F.scaled_dot_product_attention (gpt.py) may use while training.

    PyTorch picks one by itself: on a CPU its flash kernel, which never stores the (T, T) attention
    weights. That saves the most memory and time on long blocks (the lecture's 256), but for blocks of 128
    or fewer the plain "math" kernel trains faster on a CPU (README, Performance), so it gets to.
    Models that do not call scaled_dot_product_attention are not affected.
    """
    if device.type == "cpu" and cfg["block_size"] <= 128:
        return sdpa_kernel([SDPBackend.MATH])
    return contextlib.nullcontext()


def autocast(device, dtype):
    """bfloat16 autocast runs the matmuls in bf16 while the weights and the optimizer stay float32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def available_memory(device):
    """Bytes free for a run on device, or None where it cannot be told cheaply."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:  # Linux
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # other POSIX systems: the whole memory, an upper bound
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None  # Windows


def machine_info(device):
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
