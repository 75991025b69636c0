"""Training: supervised SegSort (vMF-N, Eq. 10), unsupervised SegSort (vMF, Eq. 8 on pseudo-segments),
and the pixel-wise softmax cross-entropy baseline of the same network, data and schedule.

Every random choice of step t (which images, how they are augmented) is derived from (seed, t), so
a run resumed from its checkpoint at step t continues exactly as an uninterrupted run would.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from segsort.checkpoint import load_checkpoint, save_checkpoint
from segsort.clustering import cluster_pixels, compact_segments, label_partition, segment_means
from segsort.data.voc import VOCLayout, augment, check_split
from segsort.distributed import all_sum, gather_rows, global_batch_norm, rank_and_size, share_of_global_mean
from segsort.io import IGNORE_LABEL, PipelineError, atomic_path
from segsort.losses import MemoryBank, vmf_loss, vmf_n_loss


# The training runs of params.yaml, by group, and the objective each group trains.
RUN_OBJECTIVES = {"unsupervised_runs": "unsupervised", "supervised_runs": "supervised", "softmax_runs": "softmax"}
PSEUDO_SEGMENT_KEYS = 256  # dense keys per image of the unsupervised loss: pseudo-segment ids are below 255


class TrainingError(PipelineError):
    """Training cannot go on: a non-finite loss, or nothing to learn from."""


class NonFiniteLoss(TrainingError):
    pass


LOG_EVERY = 10  # steps whose losses are read back (one host sync) and logged together, and at each checkpoint


class PendingRow(NamedTuple):
    """A trained step waiting to be logged: its loss stays on the device until `LOG_EVERY` steps are done.

    seconds: from the step's start to the launch of its update. On a GPU the work still running then is
    waited for by the next step's copy of its batch to the device, so the times add up to the run's.
    """
    step: int
    lr: float
    loss: torch.Tensor
    seconds: float
    image_ids: list[str]


def batch_indices(step: int, batch_size: int, num_images: int, seed: int) -> list[int]:
    """Images of step `step`: consecutive slices of one seeded permutation per epoch."""
    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, num_images)
        indices.append(int(np.random.default_rng([seed, epoch]).permutation(num_images)[offset]))
    return indices


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


class Batch(NamedTuple):
    """One step's augmented crops (B = the images of this process), stacked; None where the data has none."""
    images: torch.Tensor            # (B, 3, crop, crop) float RGB in [0, 255]
    labels: torch.Tensor | None     # (B, crop, crop) int64 class ids, 255 = ignore
    segments: torch.Tensor | None   # (B, crop, crop) int64 pseudo-segment ids, 255 = none
    locations: torch.Tensor         # (B, 2, crop, crop) original-image coordinates (y, x) in [0, 1)
    blocks: torch.Tensor | None     # (B, crop, crop) int64 initial k-means block in the original image's grid
    image_ids: list[str]
    # Per crop, counted on the host over its non-void pixels: the distinct classes, k-means blocks and
    # pseudo-segments it shows. The losses size their prototype tables from them (segment_capacity), so
    # that no tensor's size waits for the device.
    classes_present: tuple[int, ...] | None
    blocks_present: tuple[int, ...] | None
    segments_present: tuple[int, ...] | None

    def segment_capacity(self, objective: str, num_clusters: int, padding_segment: bool = False) -> int:
        """At least the number of segments the batch can have: each crop's clusters (the blocks it starts
        from; they only empty, never appear) times its classes, or its pseudo-segments (and its padding, when
        that is a segment)."""
        if objective == "unsupervised":
            return sum(self.segments_present) + padding_segment * len(self.segments_present)
        blocks = self.blocks_present or (num_clusters,) * len(self.classes_present)
        return sum(b * c for b, c in zip(blocks, self.classes_present))

    def to(self, device: torch.device) -> "Batch":
        return self._replace(**{name: getattr(self, name).to(device) for name in
                                ("images", "labels", "segments", "locations", "blocks") if getattr(self, name) is not None})


def make_batch(dataset: VOCLayout, indices: list[int], step: int, seed: int, crop: int, optim_cfg: dict,
               first_slot: int = 0, grid: tuple[int, int] | None = None, grid_blocks: str = "fixed_size") -> Batch:
    """Augmented crops of the given images. Slot s of step t is augmented from (seed, t, s): the
    same whether one process makes the whole batch or each process its slice (from `first_slot`).
    grid: also carry each pixel's block of this grid laid on its original image (`grid_frame: image`), cut as
    `grid_blocks` says."""
    planes = {name: [] for name in ("images", "labels", "segments", "locations", "blocks")}
    ids, present = [], {"labels": [], "segments": [], "blocks": []}
    for slot, index in enumerate(indices, start=first_slot):
        sample = dataset[index]
        rng = np.random.default_rng([seed, step, slot, 1])
        image, label, segment, location, blocks = augment(sample, rng, crop, optim_cfg["min_scale"],
                                                          optim_cfg["max_scale"], grid, grid_blocks)
        planes["images"].append(torch.from_numpy(image).permute(2, 0, 1).float())
        planes["locations"].append(torch.from_numpy(location))
        labelled = None if label is None else label != IGNORE_LABEL
        for name, plane in (("labels", label), ("segments", segment), ("blocks", blocks)):
            if plane is not None:
                planes[name].append(torch.from_numpy(plane.astype(np.int64)))
                shown = plane[plane != IGNORE_LABEL] if name != "blocks" else plane[labelled]
                present[name].append(len(np.unique(shown)))
        ids.append(sample.image_id)
    return Batch(**{name: torch.stack(xs) if xs else None for name, xs in planes.items()}, image_ids=ids,
                 classes_present=tuple(present["labels"]) or None, blocks_present=tuple(present["blocks"]) or None,
                 segments_present=tuple(present["segments"]) or None)


class BatchPrefetcher:
    """The batches of the coming steps, made by `workers` threads while the current step trains.

    A batch depends on nothing but its step (make_batch), so a prefetched batch is the one the training
    loop would have made itself: no result depends on the number of workers. Threads, not processes:
    image decoding and OpenCV release the GIL, and no batch is copied between processes. With 0 workers
    each batch is made when it is asked for.
    """

    def __init__(self, make, steps: range, workers: int):
        self.make, self.steps = make, iter(steps)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="batches") if workers > 0 else None
        self.pending = deque()
        for _ in range(2 * workers):
            self._submit_next()

    def _submit_next(self) -> None:
        step = next(self.steps, None)
        if step is not None:
            self.pending.append((step, self.pool.submit(self.make, step)))

    def get(self, step: int):
        """The batch of `step`; steps must be asked for in the order of `steps`."""
        if self.pool is None:
            return self.make(step)
        expected, batch = self.pending.popleft()
        if expected != step:
            raise RuntimeError(f"batch of step {step} asked for, step {expected} prefetched")
        self._submit_next()
        return batch.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def to_embedding_grid(maps: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour resize of (B, H, W) ids or (B, C, H, W) features to the embedding grid."""
    squeeze = maps.dim() == 3
    x = maps[:, None].float() if squeeze else maps
    x = F.interpolate(x, size=size, mode="nearest")
    return x[:, 0].long() if squeeze else x


def mean_over_batch(outputs: torch.Tensor, any_item: bool, count: torch.Tensor, local_mean):
    """The loss of the whole batch from this process's mean loss (a callable, not called without items),
    or None when the batch, on every process, has no item (pixel) to learn from.

    any_item: whether this process has an item, known on the host; count: how many, a tensor. In one
    process this is local_mean() itself, with no host sync. Under DDP it is this process's share of the
    mean over all processes (see segsort.distributed); a process without items contributes a zero that
    still touches every parameter, as DDP needs every process to produce every gradient.
    """
    if rank_and_size()[1] == 1:
        return local_mean() if any_item else None
    global_count = all_sum(count)
    if global_count == 0:
        return None
    loss = local_mean() if any_item else outputs.sum() * 0
    return share_of_global_mean(loss, count, global_count)


def pixel_rows(maps: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D): one row per pixel, image by image in row-major order."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


def with_memory(prototypes: torch.Tensor, labels: torch.Tensor, bank: MemoryBank):
    """The batch's prototypes (S, D) and labels (S,) followed by the memory bank's rows (label -1: not in use)."""
    if bank.prototypes() is None:
        return prototypes, labels
    return torch.cat([prototypes, bank.prototypes()]), torch.cat([labels, bank.labels()])


def supervised_loss(embeddings, labels, locations, num_classes, segsort_cfg, bank: MemoryBank,
                    capacity: int | None, blocks=None):
    """Algorithm 1 on the whole batch at once: k-means per image, partition by labels, prototypes over the
    (global) batch, vMF-N loss against them and the memory bank's.

    embeddings (B, D, h, w) unit, labels (B, h, w), locations (B, 2, h, w) on the embedding grid; blocks
    (B, h, w): k-means' initial blocks laid on each crop's original image, or None to lay the grid on the crop.
    capacity: rows of the prototype table, at least the batch's number of segments and known on the host
    (Batch.segment_capacity: no host sync), or None for exactly as many (see segment_capacity).
    Void pixels (255) take no part in k-means, prototypes or the loss.
    """
    grid, iterations = tuple(segsort_cfg["grid"]), segsort_cfg["kmeans_iterations"]
    num_clusters = grid[0] * grid[1]
    valid = labels != IGNORE_LABEL
    clusters = cluster_pixels(embeddings.detach(), valid, locations, grid, iterations, blocks,
                              segsort_cfg["grid_blocks"])                                       # (B, h, w)
    keys = label_partition(clusters.flatten(1), labels.flatten(1), num_clusters, num_classes)   # (B, h*w)
    segment_ids, row_keys = compact_segments(keys.reshape(-1), len(labels) * num_clusters * num_classes,
                                             capacity)                                          # (N,), (S,)
    pixels, pixel_labels = pixel_rows(embeddings), labels.reshape(-1)                           # (N, D), (N,)
    prototypes, start = gather_rows(segment_means(pixels, segment_ids, len(row_keys)))          # (S, D)
    prototype_labels, _ = gather_rows(torch.where(row_keys >= 0, row_keys % num_classes, -1))
    own_ids = torch.where(segment_ids >= 0, segment_ids + start, -1)
    loss = mean_over_batch(embeddings, len(row_keys) > 0, valid.sum(), lambda: vmf_n_loss(
        pixels, own_ids, pixel_labels, *with_memory(prototypes, prototype_labels, bank), segsort_cfg["kappa"],
        num_classes))
    bank.push(prototypes, prototype_labels)
    return loss


def unsupervised_loss(embeddings, segments, segsort_cfg, bank: MemoryBank, capacity: int | None):
    """Eq. 8 with the pseudo-segments as the segments, prototypes over the whole (global) batch, and the
    memory bank's prototypes as further negatives when the bank keeps any (`unsupervised_memory`).
    segments (B, h, w) pseudo-segment ids below 255, 255 for the crop's padding; capacity: rows of the
    prototype table, as for supervised_loss. `unsupervised_padding: segment` (the release) keeps each crop's
    padding as one more segment of its image; `dropped` leaves those pixels out."""
    if segsort_cfg["unsupervised_padding"] == "segment":
        valid = torch.ones_like(segments, dtype=torch.bool)
    else:
        valid = segments != IGNORE_LABEL
    image = torch.arange(len(segments), device=segments.device)[:, None, None]
    keys = torch.where(valid, image * PSEUDO_SEGMENT_KEYS + segments, -1).reshape(-1)           # (N,)
    segment_ids, row_keys = compact_segments(keys, len(segments) * PSEUDO_SEGMENT_KEYS, capacity)
    pixels = pixel_rows(embeddings)
    prototypes, start = gather_rows(segment_means(pixels, segment_ids, len(row_keys)))
    in_use, _ = gather_rows(torch.where(row_keys >= 0, 0, -1))  # unsupervised rows: label 0 in use, -1 not
    all_prototypes, all_labels = with_memory(prototypes, in_use, bank)
    loss = mean_over_batch(embeddings, len(row_keys) > 0, valid.sum(), lambda: vmf_loss(
        pixels, torch.where(segment_ids >= 0, segment_ids + start, -1), all_prototypes, segsort_cfg["kappa"],
        all_labels >= 0))
    bank.push(prototypes, in_use)
    return loss


def image_frame_grid(objective: str, segsort_cfg: dict) -> tuple[int, int] | None:
    """The grid whose blocks a batch's crops carry from their original images (supervised SegSort with
    `grid_frame: image`, as the release); None where k-means lays the grid on the crop, or runs no k-means."""
    if objective == "supervised" and segsort_cfg["grid_frame"] == "image":
        return tuple(segsort_cfg["grid"])
    return None


def memory_bank(objective: str, segsort_cfg: dict) -> MemoryBank:
    """The memory bank of a run: `memory_batches` batches for supervised SegSort, and for unsupervised
    SegSort only with `unsupervised_memory` (the release's unsupervised loss compares each pixel with the
    prototypes of its own batch alone)."""
    keeps = objective == "supervised" or (objective == "unsupervised" and segsort_cfg["unsupervised_memory"])
    return MemoryBank(segsort_cfg["memory_batches"] if keeps else 0)


def softmax_loss(logits, labels):
    """The baseline: pixel-wise cross-entropy, logits upsampled bilinearly to the crop, ignore pixels skipped.
    One host sync, as SegSort's: whether any pixel is labelled."""
    logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    count = (labels != IGNORE_LABEL).sum()
    return mean_over_batch(logits, bool(count), count,
                           lambda: F.cross_entropy(logits, labels, ignore_index=IGNORE_LABEL))


def objective_loss(model, objective: str, batch: Batch, num_classes: int, segsort_cfg: dict, bank: MemoryBank,
                   autocast: bool = False, static_shapes: bool | None = None):
    """The network's output on a batch and the loss of `objective` on it (None if every pixel is ignore).
    autocast: run the network in bfloat16 (GPU mixed precision); the SegSort embedding head and its
    normalisation (segsort.models), k-means and the losses run in float32.
    static_shapes: size the prototype table by the bound counted on the host (Batch.segment_capacity), so
    that the step makes no host sync; else by the exact segment count. Default: on a GPU only. On a CPU
    reading the count costs nothing, and the bound's spare rows cost time in every loss term (measured on
    the training benchmark's batch: 204 rows for 128 segments, the memory bank 408 for 205)."""
    with torch.autocast(batch.images.device.type, dtype=torch.bfloat16, enabled=autocast):
        outputs = model(batch.images)
    outputs = outputs.float()
    size = outputs.shape[-2:]
    if static_shapes is None:
        static_shapes = outputs.is_cuda
    if objective == "softmax":
        return softmax_loss(outputs, batch.labels)
    if objective == "supervised":
        blocks = None if batch.blocks is None else to_embedding_grid(batch.blocks, size)
        grid = segsort_cfg["grid"]
        return supervised_loss(outputs, to_embedding_grid(batch.labels, size),
                               to_embedding_grid(batch.locations, size), num_classes, segsort_cfg, bank,
                               batch.segment_capacity(objective, grid[0] * grid[1]) if static_shapes else None,
                               blocks)
    return unsupervised_loss(outputs, to_embedding_grid(batch.segments, size), segsort_cfg, bank,
                             batch.segment_capacity(objective, 0, segsort_cfg["unsupervised_padding"] == "segment")
                             if static_shapes else None)


def make_optimizer(model, lr: float, optim_cfg: dict) -> torch.optim.SGD:
    """SGD with momentum; x10 learning rate on the head; weight decay on conv weights only."""
    head = {id(p) for p in model.head_parameters()}
    groups = {}
    for name, param in model.named_parameters():
        is_head, decays = id(param) in head, param.dim() == 4
        key = (is_head, decays)
        groups.setdefault(key, {"params": [], "lr_multiplier": optim_cfg["head_lr_multiplier"] if is_head else 1,
                                "weight_decay": optim_cfg["weight_decay"] if decays else 0.0})
        groups[key]["params"].append(param)
    return torch.optim.SGD(list(groups.values()), lr=lr, momentum=optim_cfg["momentum"])


def poly_lr(base_lr: float, step: int, steps: int, power: float) -> float:
    return base_lr * (1 - step / steps) ** power


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def train(model, dataset: VOCLayout, objective: str, schedule: dict, optim_cfg: dict, segsort_cfg: dict,
          seed: int, log_path: Path, resume_path: Path, checkpoint_every: int, config: dict, *,
          device: torch.device = torch.device("cpu"), mixed_precision: bool = False,
          tensorboard_dir: Path | None = None, data_threads: int = 0) -> list[dict]:
    """Train `model` in place, writing a per-step log to `log_path`; resumable from `resume_path`. Returns the
    log's rows, each with the step's throughput (images_per_second) too.

    objective: "supervised" (vMF-N on labels), "unsupervised" (vMF on pseudo-segments) or "softmax".
    `config` (everything that defines the run) is hashed so a stale resume state is never used.
    Under torchrun every process takes its slice of each step's batch (see segsort.distributed);
    process 0 alone writes the log, the checkpoints and the TensorBoard events.
    mixed_precision: the network runs in bfloat16 autocast on a GPU; the losses stay in float32.
    data_threads: threads that make the next batches while a step trains (BatchPrefetcher).
    A schedule of 0 steps leaves the model as it is (Cityscapes: the runs' fine-tuning stage).
    """
    if schedule["steps"] == 0:
        print(f"{log_path.parent.name}: a schedule of 0 steps, the model stays as it starts")
        if rank_and_size()[0] == 0:
            if tensorboard_dir:
                tensorboard_dir.mkdir(parents=True, exist_ok=True)
            write_log(log_path, [])
        return []
    check_split(dataset)
    rank, world_size = rank_and_size()
    steps, batch_size, crop = schedule["steps"], schedule["batch_size"], schedule["crop"]
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} does not split over {world_size} processes")
    per_process = batch_size // world_size
    if world_size > 1 and rank == 0:
        print(f"data-parallel: {world_size} processes ({torch.distributed.get_backend()}), {per_process} of the "
              f"{batch_size} images of each step in each")
    model.to(device)
    if world_size > 1:
        model = global_batch_norm(model)  # the batch statistics of the global batch, as one process has them
    optimizer = make_optimizer(model, schedule["lr"], optim_cfg)
    bank = memory_bank(objective, segsort_cfg)
    digest = config_digest(config)
    start, log_rows = 0, []
    if resume_path.is_file():
        state = load_checkpoint(resume_path)
        if state["digest"] == digest:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            bank.load_state(state["bank"], device)
            start, log_rows = state["step"], state["log"]
            print(f"resuming from step {start} ({resume_path})")
    network = model if world_size == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = mixed_precision and device.type == "cuda"
    writer = open_tensorboard(tensorboard_dir, log_rows) if tensorboard_dir and rank == 0 else None

    first = rank * per_process
    image_grid = image_frame_grid(objective, segsort_cfg)

    def process_batch(step: int) -> Batch:
        indices = batch_indices(step, batch_size, len(dataset), seed)[first:first + per_process]
        return make_batch(dataset, indices, step, seed, crop, optim_cfg, first_slot=first, grid=image_grid,
                          grid_blocks=segsort_cfg["grid_blocks"])

    model.train()
    progress = tqdm(range(start, steps), initial=start, total=steps, desc=log_path.parent.name, mininterval=5,
                    disable=rank != 0)
    pending: list[PendingRow] = []

    def log_pending() -> None:
        """Read the losses of the steps since the last call (one host sync) and log them; stop at a
        non-finite one, before a checkpoint could keep its state."""
        values = torch.stack([row.loss for row in pending]).tolist() if pending else []
        for row, value in zip(pending, values):
            if not math.isfinite(value):
                raise NonFiniteLoss(f"non-finite loss ({value}) at step {row.step} on images {row.image_ids}; "
                                    f"the last good state is kept in {resume_path}")
            # the loss in full (a float32's every bit): the committed logs tell where two machines' runs part
            logged = {"step": row.step + 1, "loss": value / world_size, "lr": row.lr,
                      "images_per_second": round(batch_size / row.seconds, 3)}
            log_rows.append(logged)
            if writer:
                add_scalars(writer, logged)
        if values:
            progress.set_postfix(loss=f"{values[-1] / world_size:.3f}", refresh=False)
        pending.clear()

    with BatchPrefetcher(process_batch, range(start, steps), data_threads) as batches:
        for step in progress:
            tic = time.perf_counter()
            lr = poly_lr(schedule["lr"], step, steps, optim_cfg["poly_power"])
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_multiplier"]
            batch = batches.get(step).to(device)
            torch.manual_seed(step_seed(seed, step, rank))  # dropout draws, reproducible on resume
            loss = objective_loss(network, objective, batch, dataset.num_classes, segsort_cfg, bank, autocast)
            if loss is not None:  # None: every pixel of every crop was ignore, nothing to learn from
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                pending.append(PendingRow(step, lr, all_sum(loss.detach()), time.perf_counter() - tic,
                                          batch.image_ids))
            at_checkpoint = (step + 1) % checkpoint_every == 0 and step + 1 < steps
            if at_checkpoint or (step + 1) % LOG_EVERY == 0:
                log_pending()
            if at_checkpoint and rank == 0:
                save_checkpoint(resume_path, {"digest": digest, "step": step + 1, "model": model.state_dict(),
                                              "optimizer": optimizer.state_dict(), "bank": bank.state(),
                                              "log": log_rows})
        log_pending()
    if writer:
        writer.close()
    if not log_rows:
        raise TrainingError(f"{log_path.parent.name}: every crop was ignore, nothing was trained")
    if rank == 0:
        write_log(log_path, log_rows)
    return log_rows


def open_tensorboard(folder: Path, earlier_rows: list[dict]) -> SummaryWriter:
    """A TensorBoard writer for `folder` that holds the whole run, the steps before a resume included.
    Snakemake and DVC delete a failed job's outputs before they rerun it, this folder with them, while the
    resume state keeps the log rows: the earlier steps are written again from those (and any events already
    there are replaced, so a resumed run never shows a step twice)."""
    folder.mkdir(parents=True, exist_ok=True)
    for events in folder.glob("events.out.tfevents.*"):
        events.unlink()
    writer = SummaryWriter(folder)
    for row in earlier_rows:
        add_scalars(writer, row)
    return writer


def add_scalars(writer: SummaryWriter, row: dict) -> None:
    for key in ("loss", "lr", "images_per_second"):
        writer.add_scalar(key, row[key], row["step"])


def write_log(path: Path, rows: list[dict]) -> None:
    """The per-step log as CSV: step, loss (every bit of the float32) and learning rate, which the same run
    repeats exactly; the throughput, which changes with every run, goes to TensorBoard and to train's caller."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "loss", "lr"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
