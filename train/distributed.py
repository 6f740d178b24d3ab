"""Training across processes: torchrun's environment, the batch shard of each rank, synchronised
BatchNorm, and the collectives the training loop needs.

``torchrun --nproc_per_node=N train/cifar.py ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous in their environment; :func:`init` joins the
process group (gloo on CPU, nccl on CUDA). Every rank walks the *same* global batches (one
order, one augmentation, one noise draw, from the same seeded generators) and trains on its own
contiguous slice of each: ``--batch-size`` is the global batch, so the learning rate means what
it means for one process, and N ranks compute what one process computes (DDP averages the
gradients of the per-rank means; synchronised BatchNorm takes its statistics over the global
batch). A plain ``python train/cifar.py`` never touches ``torch.distributed``.

Why a BatchNorm of our own on CPU: ``torch.nn.SyncBatchNorm`` (torch 2.3) refuses CPU tensors
("SyncBatchNorm expected input tensor to be on GPU"), and gloo on CPU is how these runs are
tested and how a CPU cluster would run them. On CUDA the stock ``SyncBatchNorm`` is used.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from rssnn.errors import UserError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``size`` 1: a plain run)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and prints progress."""
        return self.rank == 0

    def shard(self, total: int) -> slice:
        """This rank's contiguous part of a global batch of ``total`` items (sizes differ by at
        most one: a short last batch is split as evenly as it goes)."""
        base, extra = divmod(total, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))


def from_environment() -> World:
    """The world torchrun describes in the environment, or a single process."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise UserError(f"RANK, WORLD_SIZE or LOCAL_RANK is not an integer ({exc})") from exc
    if size < 1 or not 0 <= rank < size:
        raise UserError(f"RANK={rank} and WORLD_SIZE={size} do not describe a process group")
    return World(rank, size, local_rank)


LAUNCHER_POLL_S = 0.2  # how often a rank checks that its launcher is still alive
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_launcher(world: World) -> None:
    """End this rank as soon as the process that started it (torchrun) ends, even by SIGKILL: a
    scheduler that counts the job dead may start it again, and two runs would then write one
    folder. Linux delivers SIGKILL to us when the launcher dies (``PR_SET_PDEATHSIG``: at once,
    so nothing is written after the kill); a thread polling ``os.getppid()``, as the Lava workers
    of :mod:`rssnn.lava_guard` do, covers other systems and a launcher gone before the call. A
    plain run (one process) is left alone: its parent is the user's shell."""
    if not world.distributed:
        return
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        # ctypes because the standard library has no prctl; why not a signal we handle: the
        # handler would run between bytecodes, possibly after one more checkpoint write.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent == 1:  # already orphaned before the call (the launcher died during our start-up)
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(LAUNCHER_POLL_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="rssnn-launcher-watch", daemon=True).start()


def device_for(world: World, requested: str) -> torch.device:
    """``--device``: auto picks ``cuda:LOCAL_RANK`` where CUDA is available, else the CPU."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA device is available; use --device cpu")
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        if world.local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {world.local_rank} but only {torch.cuda.device_count()} CUDA devices here"
            )
        return torch.device("cuda", world.local_rank) if world.distributed else torch.device("cuda")
    return torch.device("cpu")


def init(world: World, device: torch.device) -> None:
    """Join torchrun's process group: nccl for CUDA, gloo for the CPU."""
    if not world.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are taken over the whole global batch of all ranks
    (channel axis 1, every other axis reduced, as BatchNorm1d/3d do). Inference and a single
    process behave as ``nn.BatchNorm*``; the state dict has the same keys."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        from torch.distributed.nn.functional import all_reduce  # differentiable all-reduce

        dims = [d for d in range(input.dim()) if d != 1]
        count = input.new_tensor([input.numel() / input.shape[1]])
        sums = torch.cat([input.sum(dims), (input * input).sum(dims), count])
        sums = all_reduce(sums)
        c = input.shape[1]
        n = sums[-1]
        mean = sums[:c] / n
        var = sums[c : 2 * c] / n - mean * mean  # biased: what normalises the batch
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                unbiased = var.detach() * (n / (n - 1)).detach()
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(unbiased * m)
        shape = [1, c] + [1] * (input.dim() - 2)
        out = (input - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def synchronise_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` takes its statistics over all ranks (in place; returns it)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, CPUSyncBatchNorm):
                sync = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                        child.track_running_stats)  # fmt: skip
                sync.load_state_dict(child.state_dict())
                sync.to(child.weight.device if child.affine else device)
                sync.train(child.training)
                setattr(parent, name, sync)
    return model


def sum_across(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (the values themselves in a plain run)."""
    if not world.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
