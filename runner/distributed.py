"""Data-parallel training under torchrun: N processes, each with a copy of the model and its own batches.

    torchrun --standalone --nproc_per_node=2 gpt.py ...

Each process ("rank") draws different batches; after backward, DistributedDataParallel averages the
gradients across ranks, so every copy takes the same step, as one process would with N times the batch.
Rank 0 alone prints, evaluates, samples and writes files. On CUDA the ranks talk through NCCL, one GPU
each; on a CPU through gloo. Without torchrun (no WORLD_SIZE in the environment) there is one rank,
rank 0, and every function here leaves things as they are.
"""

import os

import torch
import torch.distributed as dist

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
    """A list of every rank's obj, on every rank: the one exchange the runner needs. any(gather(flag)) stops
    every rank at the same step when any was asked to stop; gather(obj)[0] is rank 0's obj, everywhere."""
    if WORLD == 1:
        return [obj]
    out = [None] * WORLD
    dist.all_gather_object(out, obj)
    return out
