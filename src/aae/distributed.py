"""Data-parallel training across processes (``torchrun``), on PyTorch's own collectives.

``torchrun --nproc_per_node=K -m aae train ...`` starts K processes; each holds a full replica,
takes its 1/K slice of every global batch, and averages its gradients with the others before each
optimizer step (all-reduce, gloo on CPU, nccl on GPU). Replicas start equal (same seed) and stay
equal because every rank applies the same averaged gradient; :meth:`Shard.replicas_equal` checks it.

Why not ``DistributedDataParallel``: DDP's contract is one forward and one backward per step over
one module. An AAE step has three phases, each a backward over a different parameter set, with the
discriminator frozen during the encoder's phase; DDP's reducer would wait for gradients that never
come. Averaging each phase's gradients explicitly is what DDP does inside, minus the overlap of
communication with the backward pass, which matters little at these model sizes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import AAEError


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def slice(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous 1/world of a global batch."""
        if self.world == 1:
            return t
        n = len(t) // self.world
        return t[self.rank * n:(self.rank + 1) * n]

    def average_grads(self, params: list[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective per phase, not per tensor
        dist.all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t)
        return t

    def all_max(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if it is true on any rank (a stop request, a divergence)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def replicas_equal(self, module: torch.nn.Module) -> bool:
        if self.world == 1:
            return True
        sums = torch.stack([p.detach().double().sum() for p in module.parameters()])
        lo, hi = sums.clone(), sums.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        return bool(torch.equal(lo, hi))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


SINGLE = Shard()


def setup(device: torch.device) -> tuple[Shard, torch.device]:
    """Join the process group that torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE, device
    if not dist.is_available():
        raise AAEError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Shard(rank, world), device


def teardown(shard: Shard) -> None:
    if shard.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
