"""Data-parallel training under torchrun, on the CPU with the gloo backend: two processes, real launches.

What must hold: every rank takes the same step (DDP averages the gradients, so two ranks with batch B
equal one process with batch 2B on the same sequences), rank 0 alone prints and writes, and a run
stopped under torchrun resumes under torchrun.
"""

import json
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.testing import assert_close

import gpt
import runner
from data import get_batch
from helpers import ENV, REPO_ROOT

CFG = dict(runner.defaults(gpt.HYPERPARAMETERS), n_embd=16, n_head=2, n_layer=1, block_size=16, batch_size=4, dropout=0.0, lr=1e-2)
FLAGS = ["--max-iters", "20", "--eval-interval", "10", "--eval-iters", "2", "--batch-size", "4", "--block-size", "16",
         "--n-embd", "16", "--n-head", "2", "--n-layer", "1", "--dropout", "0.1", "--max-new-tokens", "10",
         "--device", "cpu", "--final-eval", "2000"]
slow = pytest.mark.slow

# One rank's side of the equivalence test: the batch of 2B sequences is split between the ranks.
RANK_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    import torch.distributed as dist
    sys.path.insert(0, {root!r})  # this script runs from a temporary folder
    import gpt, runner
    cfg = {cfg!r}
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = gpt.build_model(cfg, 40)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = runner.make_optimizer(model, cfg, torch.device("cpu"))
    x, y = torch.load({batch!r})
    B = x.size(0) // 2
    rows = slice(rank * B, (rank + 1) * B)
    _, loss = ddp(x[rows], y[rows])  # one step of runner/loop.py's train(), on this rank's half of the batch
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # DDP averages the gradients across the ranks here
    torch.nn.utils.clip_grad_norm_(model.parameters(), runner.GRAD_CLIP)
    optimizer.step()
    if rank == 0:
        torch.save(model.state_dict(), {out!r})
    dist.barrier()  # neither rank tears the group down while the other still uses it (runner does the same)
    dist.destroy_process_group()
""")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *map(str, args)]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=240)


@slow
def test_one_step_on_two_ranks_with_batch_b_equals_one_process_with_batch_2b(tmp_path):
    data = torch.randint(40, (2000,), generator=torch.Generator().manual_seed(3))
    x, y = get_batch(data, 2 * CFG["batch_size"], CFG["block_size"], generator=torch.Generator().manual_seed(4))
    torch.save((x, y), tmp_path / "batch.pt")
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT.format(root=str(REPO_ROOT), cfg=CFG, batch=str(tmp_path / "batch.pt"),
                                         out=str(tmp_path / "ddp.pt")))
    # the variables torchrun sets, set by hand: two ranks on this machine
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(script)], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
                              env={**ENV, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err

    torch.manual_seed(0)
    single = gpt.build_model(CFG, 40)
    before = {k: v.clone() for k, v in single.state_dict().items()}
    optimizer = runner.make_optimizer(single, CFG, torch.device("cpu"))
    _, loss = single(x, y)  # the same step on the whole batch in one process
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(single.parameters(), runner.GRAD_CLIP)
    optimizer.step()
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    for name, weight in single.state_dict().items():
        assert_close(ddp[name], weight, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(before[k], v) for k, v in single.state_dict().items())  # the step moved the weights


@slow
def test_under_torchrun_a_run_resumes_exactly_rank_0_alone_prints_writes_samples_and_refuses_for_all(small_text_path,
                                                                                                    tmp_path):
    out = tmp_path / "out"
    first = torchrun("gpt.py", *FLAGS, "--data", small_text_path, "--out", out, "--stop-at", 12)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("step 0:") == 1  # one rank printed
    assert "stopped at step 12 of 20" in first.stdout
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2  # every rank's batch generator is kept
    assert not torch.equal(ckpt["rng"][0]["batches"], ckpt["rng"][1]["batches"])  # ranks draw different batches

    second = torchrun("gpt.py", *FLAGS, "--data", small_text_path, "--out", out, "--resume")
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stdout and second.stdout.count("---- sample (") == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["iters"] == 20
    assert metrics["tokens_per_second"] == pytest.approx(20 * 4 * 16 * 2 / metrics["train_seconds"])
    assert [h["iter"] for h in metrics["history"]] == [0, 10, 20]
    whole = torchrun("gpt.py", *FLAGS, "--data", small_text_path, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr  # every rank resumed its own batch generator: the same losses
    assert torch.load(tmp_path / "whole" / "ckpt.pt", weights_only=True)["step_losses"] == torch.load(
        out / "ckpt.pt", weights_only=True)["step_losses"]

    refused = torchrun("gpt.py", *FLAGS, "--data", small_text_path, "--out", out)  # rank 0 refuses: no rank hangs
    assert refused.returncode != 0 and refused.stderr.count("already holds a trained gpt model") == 1
    sampled = torchrun("gpt.py", "--sample-only", "--out", out, "--max-new-tokens", 20, "--device", "cpu")
    assert sampled.returncode == 0 and sampled.stdout.count("---- sample (") == 1  # one process samples
