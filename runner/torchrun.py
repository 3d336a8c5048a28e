"""Data-parallel training under torchrun: N processes, each with a copy of the model and its own batches.

    torchrun --standalone --nproc_per_node=2 gpt.py ...

Each process ("rank") draws different batches; after backward, DistributedDataParallel averages the
gradients across ranks, so every copy takes the same step, as one process would with N times the batch.
Rank 0 alone prints (say), evaluates, samples and writes files. On CUDA the ranks talk through NCCL, one GPU
each; on a CPU through gloo. Without torchrun (no WORLD_SIZE in the environment) there is one rank,
rank 0, and every function here leaves things as they are.
"""

import os
import sys

import torch
import torch.distributed as dist
from tqdm import tqdm

from data import DataError

RANK = int(os.environ.get("RANK", "0"))
WORLD = int(os.environ.get("WORLD_SIZE", "1"))
MAIN = RANK == 0


def start(device):
    """Join the process group torchrun set up; returns the device this rank uses."""
    if WORLD > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop(clean=True):
    """Leave the process group. After a clean finish every rank first waits for the others, so none tears
    the group down while another still uses it (rank 0 may still be saving)."""
    if dist.is_available() and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def wrap(model, device):
    """The module the training step calls: DDP around model when several ranks train, else model itself."""
    if WORLD == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gather(obj):
    """A list of every rank's obj, on every rank; gather(obj)[0] is rank 0's obj, everywhere."""
    if WORLD == 1:
        return [obj]
    out = [None] * WORLD
    dist.all_gather_object(out, obj)
    return out


def agree(check):
    """check() run on rank 0 alone (the checks of --out: only rank 0 writes there), its DataError raised on
    every rank, so that no rank trains on while rank 0 has refused to start. Returns what check returned."""
    why = result = None
    if MAIN:
        try:
            result = check()
        except DataError as e:
            why = str(e)
    if why := gather(why)[0]:
        raise DataError(why)
    return result


def say(*args, file=None, **kwargs):
    """print() on rank 0 alone, above the progress bar. A reader that went away (`python gpt.py | head`)
    never stops training: that stream goes to the null device from then on."""
    if not MAIN:
        return
    file = file or sys.stdout
    try:
        with tqdm.external_write_mode():  # clears the bar, prints, draws the bar again below
            print(*args, file=file, flush=True, **kwargs)
    except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
        setattr(sys, "stdout" if file is sys.stdout else "stderr", open(os.devnull, "w", encoding="utf-8"))
