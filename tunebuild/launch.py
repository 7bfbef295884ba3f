"""Multi-process training: the launcher, and what each worker process needs (params section `launch`).

`python -m stages.train` is the one entry point (dvc repro, dvc exp run, by hand). With
launch.processes > 1 it does not train itself: it starts that many workers running the same module
with torch.distributed.run's launcher (what `torchrun` does) and waits for them. A worker sees RANK,
WORLD_SIZE and LOCAL_RANK in its environment (so does a process started by your own `torchrun` or
`accelerate launch`, e.g. across several machines: the stage then runs as a worker directly).

- Same data on every rank: each rank builds the global batches exactly as one process does (same
  seed) and takes every world-th row of each one (`share`). train.batch_size stays the global batch,
  so changing the process count does not change what one optimizer step sees.
- Gradients: each rank's loss is its rows' summed loss over the global batch's count, times the world
  size; DDP (or FSDP) averages over ranks, so a step is the one-process step up to float summation order.
- Only rank 0 writes (model, curve, checkpoints); the others compute the same things and wait.
- A failure: the failing worker records its one-line error for the launcher (the file torchelastic
  names in TORCHELASTIC_ERROR_FILE), the launcher stops the other workers and raises one UserError
  naming the rank that failed first and its error. Nothing is written after a failure (rank 0 saves
  only after every rank has finished training).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from typing import Callable, Iterator

import torch

from tunebuild.errors import UserError
from tunebuild.params import LaunchParams

BACKENDS = ("gloo", "nccl")
STRATEGIES = ("ddp", "fsdp")


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def inside() -> bool:
    """True in a worker started by a launcher (ours, torchrun, accelerate launch)."""
    return "LOCAL_RANK" in os.environ


def check(p: LaunchParams, batch_size: int) -> None:
    if p.processes < 1:
        raise UserError(f"params.yaml: launch.processes: {p.processes}; must be at least 1")
    if p.backend not in BACKENDS:
        raise UserError(f"params.yaml: launch.backend: '{p.backend}' is not one of {', '.join(BACKENDS)}")
    if p.strategy not in STRATEGIES:
        raise UserError(f"params.yaml: launch.strategy: '{p.strategy}' is not one of {', '.join(STRATEGIES)}")
    if p.backend == "nccl" and p.processes > 1 and torch.cuda.device_count() < p.processes:
        raise UserError(f"params.yaml: launch.backend: nccl needs one GPU per process; {p.processes} processes, "
                        f"{torch.cuda.device_count()} GPUs here (on CPU use launch.backend=gloo)")
    size = world() if inside() else p.processes
    if batch_size % size:
        raise UserError(f"params.yaml: train.batch_size ({batch_size}) is the global batch and must be a multiple "
                        f"of the number of processes ({size}); change one of them")


def start(p: LaunchParams, module: str) -> None:
    """Run `python -m <module>` as p.processes workers on this machine and wait for all of them."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # we say what failed, once
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // p.processes)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=p.processes, run_id=f"tunebuild-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    print(f"train: starting {p.processes} processes ({p.strategy}, {p.backend})", flush=True)
    try:
        elastic_launch(config, sys.executable)("-m", module)
    except ChildFailedError as e:
        raise UserError(describe(e.failures, p.processes)) from None


def describe(failures: dict, size: int) -> str:
    """The first failure, in words. Workers the launcher stopped (SIGTERM) are effects, not causes; a worker
    that died without recording an error (killed, e.g. out of memory) died before its peers noticed."""
    import signal

    causes = {r: f for r, f in failures.items() if f.exitcode != -signal.SIGTERM} or failures
    first = min(causes, key=lambda r: ("time_ns" in causes[r].error_file_data, causes[r].error_file_data.get("time_ns"), r))
    f = causes[first]
    how = f"killed by {f.signal_name()}" if f.exitcode < 0 else f"exit code {f.exitcode}"
    said = f.error_file_data["message"] if "time_ns" in f.error_file_data else "no error recorded"
    return (f"train: rank {first} of {size} failed ({how}): {said}; the other ranks were stopped and no model "
            "was written")


def record(message: str) -> None:
    """Leave this worker's error where the launcher reads it."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        with open(path, "w") as f:
            json.dump({"message": message, "timestamp": int(time.time()), "time_ns": time.time_ns()}, f)


@contextlib.contextmanager
def worker(p: LaunchParams) -> Iterator[None]:
    """Join the process group for the body (one GPU per process with nccl); record a failure for the launcher.
    A lost peer becomes one line (the launcher names the rank that failed first)."""
    if world() == 1:
        yield
        return
    import torch.distributed as dist

    try:
        if p.backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(p.backend)
        yield
        dist.barrier()
        dist.destroy_process_group()
    except UserError as e:
        record(str(e))
        raise
    except dist.DistError as e:
        record(f"lost contact with another rank: {str(e).splitlines()[0]}")
        raise UserError(f"train: rank {rank()}: stopped, another rank failed ({str(e).splitlines()[0]})") from None
    except Exception as e:
        record(f"{type(e).__name__}: {e} (traceback above)")
        raise


def seed_dropout(seed: int) -> None:
    """Each rank its own random stream (dropout), once the model is built the same on every rank: ranks drawing
    the same masks would correlate the noise of rows at the same place in their shares."""
    if world() > 1:
        torch.manual_seed(seed * 1_000_003 + rank())


def share(rows: list) -> tuple[list, float]:
    """This rank's rows of a global batch (every world()-th, from rank()) and their weight. A rank left with no
    row runs the first one with weight 0, so it still joins the gradient all-reduce."""
    mine = rows[rank()::world()]
    return (mine, 1.0) if mine else (rows[:1], 0.0)


def collective_device() -> str:
    """Where tensors for a collective live: the GPU with nccl, else the CPU."""
    import torch.distributed as dist

    return "cuda" if dist.get_backend() == "nccl" else "cpu"


def all_sum(x: float) -> float:
    """The sum of `x` over all ranks."""
    if world() == 1:
        return x
    import torch.distributed as dist

    t = torch.tensor([x], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t)
    return t.item()


def gather(t: torch.Tensor) -> list[torch.Tensor]:
    """`t` from every rank, in rank order (CPU tensors)."""
    if world() == 1:
        return [t]
    import torch.distributed as dist

    dev = collective_device()
    out = [torch.empty_like(t, device=dev) for _ in range(world())]
    dist.all_gather(out, t.to(dev))
    return [o.cpu() for o in out]


def wrap(model: torch.nn.Module, strategy: str) -> torch.nn.Module:
    """DDP around the model, or FSDP2 (fully_shard per transformer block, then the root) in place."""
    if world() == 1:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        blocks = set(getattr(base_of(model), "_no_split_modules", None) or [])
        for m in model.modules():
            if type(m).__name__ in blocks:
                fully_shard(m)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if torch.cuda.is_available() else None)


def base_of(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside peft / loss wrappers (the one that names its transformer blocks)."""
    while not hasattr(model, "_no_split_modules") and hasattr(model, "model"):
        model = model.model
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The module inside DDP (FSDP2 shards in place: the same module)."""
    return getattr(net, "module", net)


def no_sync(net: torch.nn.Module, last: bool):
    """DDP: all-reduce gradients only on the last micro-batch of an optimizer step (FSDP reduces every one)."""
    return contextlib.nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync()


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor (a collective for an FSDP shard: every rank must call it)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """A whole tensor cut into this rank's shard when `ref` (a parameter of the same shape) is sharded."""
    if hasattr(ref, "device_mesh") and t.shape == ref.shape:
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(t.to(ref.device), ref.device_mesh, ref.placements)
    return t.to(ref.device)


def saved(model: torch.nn.Module, build: Callable[[], torch.nn.Module]) -> torch.nn.Module | None:
    """The trained model as an ordinary module on rank 0 (None on the others). FSDP: the shards gathered
    (a collective) into a fresh copy that `build` makes."""
    if world() == 1:
        return model
    if not any(hasattr(q, "device_mesh") for q in model.parameters()):
        return model if rank() == 0 else None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank() != 0:
        return None
    fresh = build()
    fresh.load_state_dict(state)
    return fresh
