"""Training on several processes with DistributedDataParallel, as ``torchrun`` starts them.

    torchrun --nproc_per_node 2 -m training.train --data ... --output-dir runs/ddp       # 2 GPUs, or 2 CPU processes
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 -m training.train ...

``--batch-size`` stays the global batch: each of N processes takes every N-th item of each
batch of the seeded order (``shard``), so that the batches, the per-item augmentations and
the gradients are those of one process. BatchNorm sees the statistics of the whole batch:
torch's SyncBatchNorm on GPUs (nccl), and ``CrossProcessBatchNorm2d`` on CPUs (gloo), where
SyncBatchNorm does not run. Only the first process writes histories, checkpoints and models.
"""

from __future__ import annotations

import gc
import os

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device_name: str) -> torch.device:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); the device of this process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_name.startswith("cuda") else "gloo")
    if device_name.startswith("cuda") and world_size() > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(device_name)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # autograd graphs still holding gloo's work objects: freed now, not at interpreter exit (SIGABRT)
        dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shard(items: list, batch_size: int, drop_last: bool) -> list:
    """This process's items of a seeded order: whole global batches only (when ``drop_last``), every
    ``world_size()``-th item, so that process r's k-th local batch is its share of the k-th global batch."""
    if drop_last:
        items = items[: len(items) // batch_size * batch_size]
    n = world_size()
    if n == 1:
        return items
    padded = items + items[: (-len(items)) % n]
    return padded[rank() :: n]


class CrossProcessBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, gathered from every process
    with a differentiable all-reduce (any backend, gloo included)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        channels = x.shape[1]
        wide = x.double()  # sums of squares in float64: E[x^2] - E[x]^2 loses too much in float32
        sums, squares = wide.sum(dim=(0, 2, 3)), (wide * wide).sum(dim=(0, 2, 3))
        local = torch.cat([sums, squares, wide.new_tensor([x.numel() / channels])])
        total = all_reduce(local)
        count = total[-1]
        mean64 = total[:channels] / count
        var = (total[channels : 2 * channels] / count - mean64 * mean64).clamp_min(0).to(x.dtype)
        mean = mean64.to(x.dtype)
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1), self.momentum)
        scale = self.weight / torch.sqrt(var + self.eps)
        return x * scale[None, :, None, None] + (self.bias - mean * scale)[None, :, None, None]


def cross_process_batchnorm(model: nn.Module) -> nn.Module:
    """Every BatchNorm2d of ``model`` replaced by one that normalises with the global batch's statistics."""
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            replacement = CrossProcessBatchNorm2d(child.num_features, child.eps, child.momentum)
            replacement.load_state_dict(child.state_dict())
            setattr(model, name, replacement.to(child.weight.device))
        else:
            cross_process_batchnorm(child)
    return model


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model for training in this process group: global-batch BatchNorm and gradient averaging."""
    if world_size() == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(cross_process_batchnorm(model))


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def sum_over_processes(*values: float) -> list[float]:
    if world_size() == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_objects(value) -> list:
    """Every process's ``value``, in rank order."""
    if world_size() == 1:
        return [value]
    parts = [None] * world_size()
    dist.all_gather_object(parts, value)
    return parts


def gather_metrics(metrics):
    """One ``HeadMetrics`` with every process's predictions and targets."""
    if world_size() == 1:
        return metrics
    parts = gather_objects((metrics.top_predictions, metrics.targets))
    metrics.top_predictions = [t for predictions, _ in parts for t in predictions]
    metrics.targets = [t for _, targets in parts for t in targets]
    return metrics


def first_process_decides(flag: bool) -> bool:
    """The first process's ``flag`` in every process (a decision taken on its clock, which all must follow)."""
    if world_size() == 1:
        return flag
    tensor = torch.tensor([int(flag)])
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())
