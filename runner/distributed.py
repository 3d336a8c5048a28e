"""Data-parallel training under torchrun: N processes, each with a copy of the model and its own batches.

    torchrun --standalone --nproc_per_node=2 gpt.py ...

Each process ("rank") draws different batches; after backward, DistributedDataParallel averages the
gradients across ranks, so every copy takes the same step, as one process would with N times the batch.
Rank 0 alone prints, evaluates, samples and writes files. On CUDA the ranks talk through NCCL, one GPU
each; on a CPU through gloo. Without torchrun (no WORLD_SIZE in the environment) nothing here does
anything: world size 1, rank 0.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self):
        return self.rank == 0

    @property
    def active(self):
        return self.world_size > 1


def start(device):
    """Join the process group torchrun set up; returns (Ranks, the device this rank uses)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def stop():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model, ranks, device):
    """The module the training step calls: DDP around model when several ranks train, else model itself."""
    if not ranks.active:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def any_rank(flag, ranks, device):
    """True on every rank if flag is true on any: all ranks must stop at the same step."""
    if not ranks.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(obj, ranks):
    """A list of every rank's obj (on every rank)."""
    if not ranks.active:
        return [obj]
    out = [None] * ranks.world_size
    dist.all_gather_object(out, obj)
    return out


def from_main(obj, ranks):
    """Rank 0's obj, on every rank."""
    if not ranks.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
