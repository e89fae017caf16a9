"""Data-parallel training of ONE model over several processes (PyTorch DDP, launched by torchrun).

The classifier loop (:func:`sonogan.train.loop.train_classifier`) and the GAN loop
(:func:`sonogan.synth.trainer.fit_gan`) call these helpers; outside torchrun (no
``WORLD_SIZE``, or 1) every helper is the identity, so a single process runs exactly as before.

How a run stays equal to the single-process run (up to float error):

- every rank draws the SAME global batch from the same seeded generator and keeps its slice
  (:func:`shard_bounds`); augmentation is drawn for the whole batch (:func:`shard_apply`),
  so every image sees the random numbers it sees in one process;
- BatchNorm becomes SyncBatchNorm (statistics over the global batch); DDP averages the
  gradients, and :func:`shard_weight` rescales a rank's mean loss when shards are unequal;
- only rank 0 writes files (:func:`is_main`); every rank resumes from the same checkpoint.

Example:
    >>> init_from_env()        # no torchrun here: a single process
    False
    >>> world_size(), is_main(), shard_bounds(10)
    (1, True, (0, 10))
"""

from __future__ import annotations

import atexit
import contextlib
import os
import warnings
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
import torch.distributed._functional_collectives as funcol
from torch.nn.parallel import DistributedDataParallel


def init_from_env() -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); True when distributed.

    Idempotent. Backend: gloo for CPU tensors and NCCL for CUDA tensors when NCCL exists, so a
    GPU machine can still train a ``device: cpu`` config. Each rank uses GPU ``LOCAL_RANK``.
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo")
    atexit.register(_destroy)
    return True


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    """This process's index on its node (torchrun's ``LOCAL_RANK``; 0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0: the only process that writes files, logs and shows progress."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. builds a preprocessing cache), the others after it."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def device_for(device: torch.device) -> torch.device:
    """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` in a distributed run."""
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", local_rank())
    return device


def shard_bounds(n: int) -> tuple[int, int]:
    """[lo, hi) of this rank's part of a global batch of ``n`` (torch.tensor_split sizes)."""
    w, r = world_size(), rank()
    base, extra = divmod(n, w)
    lo = r * base + min(r, extra)
    return lo, lo + base + (1 if r < extra else 0)


def shard_weight(n: int) -> float:
    """Factor on this rank's MEAN loss so DDP's gradient average equals the gradient of the
    mean over the global batch when shards are unequal: ``n_rank * world / n``."""
    lo, hi = shard_bounds(n)
    return (hi - lo) * world_size() / n


def shard_apply(fn: Callable[[torch.Tensor], torch.Tensor], local: torch.Tensor, n: int) -> torch.Tensor:
    """``fn`` (a per-image random transform such as DiffAugment) on this rank's shard, with the
    random numbers the shard's images get in one process: ``fn`` runs on a global-size batch
    (the shard in its place, zeros elsewhere) and the shard is cut back out. Gradients flow to
    ``local`` only. Costs the transform of ``world`` times the shard; models cost far more."""
    if not is_distributed():
        return fn(local)
    lo, hi = shard_bounds(n)
    rest = local.shape[1:]
    full = torch.cat([local.new_zeros((lo, *rest)), local, local.new_zeros((n - hi, *rest))])
    return fn(full)[lo:hi]


def seed_rank(seed: int, step: int) -> None:
    """Ranks > 0 draw their own global-RNG numbers (dropout masks) rather than copies of rank 0's,
    from a seed of (seed, rank, step); rank 0 keeps the single-process stream. Reseeding at each
    ``step`` (epoch) makes a resumed run equal an uninterrupted one."""
    if rank() > 0:
        torch.manual_seed(int(np.random.SeedSequence([seed, rank(), step]).generate_state(1)[0]))


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over ranks (a new tensor; ``x`` itself when not distributed)."""
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every rank (decisions such as early stopping)."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)])
    dist.broadcast(t, 0)  # a CPU tensor: gloo (the CPU half of the backend)
    return bool(t.item())


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Synchronised BatchNorm for CPU tensors (gloo): torch's SyncBatchNorm runs on GPUs only
    (and DDP refuses it in a CPU module).

    Written by hand for that reason: the batch mean and variance are all-reduced with the
    differentiable functional all-reduce (its backward sums the gradients of every rank, as
    torch's GPU kernel does), so a CPU run on N processes normalises over the
    global batch like one process does. In eval mode (or alone) it is plain BatchNorm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = float(all_sum(torch.tensor(float(x.numel() // x.shape[1]))))  # values per channel, all ranks
        # two passes (mean, then centred squares) as a single process computes it: no cancellation
        mean = funcol.all_reduce(x.sum(dims), "sum", dist.group.WORLD) / n
        centred = x - mean.view(shape)
        var = funcol.all_reduce((centred * centred).sum(dims), "sum", dist.group.WORLD) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * (n / max(n - 1, 1.0)), m)  # unbiased, as BatchNorm
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers -> synchronised BatchNorm, keeping the same Parameter and buffer objects
    (optimisers already built keep working): torch's SyncBatchNorm on GPUs (in place below the
    root), :class:`CpuSyncBatchNorm` on CPU (each layer's class swapped in place)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.__class__ = CpuSyncBatchNorm
    return module


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` for the training forward: DDP around its SyncBatchNorm version when
    distributed, else ``module`` itself. Keep the unwrapped module for state_dicts and EMA."""
    if not is_distributed():
        return module
    module = sync_batchnorm(module, device)  # our roots are never a BatchNorm: converted in place
    # a 1-channel conv's weight gradient has another stride on its size-1 axis, which means nothing
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    # synchronised BatchNorm updates the running stats identically on every rank: no per-forward sync
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def no_sync(module: nn.Module) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync`` (gradients that will be discarded, e.g. D's during the G step), else a no-op."""
    return module.no_sync() if isinstance(module, DistributedDataParallel) else contextlib.nullcontext()
