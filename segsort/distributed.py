"""Data-parallel training under `torchrun`: one process per GPU (NCCL), or per CPU process (gloo).

The SegSort losses compare every pixel with the prototypes of the whole batch, so each process
gathers the other processes' prototypes (`gather_rows`, differentiable: the gradient of a remote
prototype flows back to the process that computed it), and turns its mean loss into its share of the
global mean (`share_of_global_mean`). With DDP averaging the gradients over processes, the update is
then the one a single process would make on the global batch.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_autograd


def rank_and_size() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def setup_from_environment() -> torch.device:
    """Join the process group that torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK), if any, and
    return this process's device."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of `value` over processes (no gradient)."""
    if not dist.is_initialized():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value


def gather_rows(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every process's rows concatenated in rank order, and where this process's rows start.

    Processes may hold different numbers of rows: they are padded to the largest count for the
    collective and cut back after it.
    """
    rank, size = rank_and_size()
    if size == 1:
        return rows, 0
    counts = [torch.zeros(1, dtype=torch.long, device=rows.device) for _ in range(size)]
    dist.all_gather(counts, torch.tensor([len(rows)], device=rows.device))
    counts = [int(c) for c in counts]
    padded = torch.cat([rows, rows.new_zeros(max(counts) - len(rows), *rows.shape[1:])])
    if rows.requires_grad:
        parts = dist_autograd.all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in range(size)]
        dist.all_gather(parts, padded)
    return torch.cat([part[:count] for part, count in zip(parts, counts)]), sum(counts[:rank])


def share_of_global_mean(local_mean: torch.Tensor, local_count: torch.Tensor,
                         global_count: torch.Tensor) -> torch.Tensor:
    """This process's part of the mean over all processes' items, scaled by the number of processes
    because DDP averages gradients: sum_r share_r / size is the global mean."""
    _, size = rank_and_size()
    if size == 1:
        return local_mean
    return local_mean * (local_count * size / global_count)


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, as SyncBatchNorm's are, for
    processes on CPUs (gloo), where SyncBatchNorm refuses to run: with each process's own statistics, two
    processes would train another network than one process does. The sums over processes go through a
    differentiable all-reduce, so the gradient through the statistics reaches every process's pixels.
    Mean first, then the mean squared deviation (two passes, as BatchNorm computes them)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W), this process's part of the batch
        if not self.training:
            return super().forward(x)
        count = all_sum(torch.tensor(float(x.numel() // x.shape[1]), device=x.device))  # pixels of the global batch
        mean = dist_autograd.all_reduce(x.sum((0, 2, 3))) / count                         # (C,)
        centred = x - mean[None, :, None, None]
        var = dist_autograd.all_reduce(centred.square().sum((0, 2, 3))) / count           # (C,), biased
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * count / (count - 1), self.momentum)  # unbiased, as BatchNorm keeps it
        scale = self.weight * torch.rsqrt(var + self.eps)
        return centred * scale[None, :, None, None] + self.bias[None, :, None, None]


def global_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with every BatchNorm2d computing the global batch's statistics: SyncBatchNorm on a GPU,
    GlobalBatchNorm2d on a CPU. Parameters and buffers keep their names, so checkpoints do not change."""
    if next(model.parameters()).device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is torch.nn.BatchNorm2d:
                replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                                child.track_running_stats, device=child.weight.device)
                replacement.load_state_dict(child.state_dict())
                setattr(parent, name, replacement)
    return model
