"""Training: supervised SegSort (vMF-N, Eq. 10), unsupervised SegSort (vMF, Eq. 8 on pseudo-segments),
and the pixel-wise softmax cross-entropy baseline of the same network, data and schedule.

Every random choice of step t (which images, how they are augmented) is derived from (seed, t), so
a run resumed from its checkpoint at step t continues exactly as an uninterrupted run would.
"""
from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from segsort.checkpoint import load_checkpoint, save_checkpoint
from segsort.clustering import cluster_pixels, compact_ids, partition_by_labels, segment_means
from segsort.data.voc import VOCLayout, augment, check_split
from segsort.io import IGNORE_LABEL, atomic_path
from segsort.losses import MemoryBank, vmf_loss, vmf_n_loss


class NonFiniteLoss(RuntimeError):
    pass


def batch_indices(step: int, batch_size: int, num_images: int, seed: int) -> list[int]:
    """Images of step `step`: consecutive slices of one seeded permutation per epoch."""
    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, num_images)
        indices.append(int(np.random.default_rng([seed, epoch]).permutation(num_images)[offset]))
    return indices


def step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def make_batch(dataset: VOCLayout, indices: list[int], step: int, seed: int, crop: int, optim_cfg: dict):
    images, labels, segments, locations, ids = [], [], [], [], []
    for slot, index in enumerate(indices):
        sample = dataset[index]
        rng = np.random.default_rng([seed, step, slot, 1])
        image, label, segment, location = augment(sample, rng, crop, optim_cfg["min_scale"], optim_cfg["max_scale"])
        images.append(torch.from_numpy(image).permute(2, 0, 1).float())
        locations.append(torch.from_numpy(location))
        if label is not None:
            labels.append(torch.from_numpy(label).long())
        if segment is not None:
            segments.append(torch.from_numpy(segment).long())
        ids.append(sample.image_id)
    stack = lambda xs: torch.stack(xs) if xs else None
    return stack(images), stack(labels), stack(segments), stack(locations), ids


def to_embedding_grid(maps: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour resize of (B, H, W) ids or (B, C, H, W) features to the embedding grid."""
    squeeze = maps.dim() == 3
    x = maps[:, None].float() if squeeze else maps
    x = F.interpolate(x, size=size, mode="nearest")
    return x[:, 0].long() if squeeze else x


def supervised_loss(embeddings, labels, locations, num_classes, segsort_cfg, bank: MemoryBank):
    """Algorithm 1: k-means per image, partition by labels, prototypes over the batch, vMF-N loss."""
    grid, iterations = tuple(segsort_cfg["grid"]), segsort_cfg["kmeans_iterations"]
    pixels, segment_ids, pixel_labels, segment_labels, offset = [], [], [], [], 0
    for emb, lab, loc in zip(embeddings, labels, locations):
        valid = lab != IGNORE_LABEL
        if not valid.any():
            continue
        clusters = cluster_pixels(emb.detach(), valid, loc, grid, iterations)
        seg, seg_labels = partition_by_labels(clusters[valid], lab[valid], num_classes)
        pixels.append(emb[:, valid].T)
        segment_ids.append(seg + offset)
        pixel_labels.append(lab[valid])
        segment_labels.append(seg_labels)
        offset += len(seg_labels)
    if not pixels:
        return None
    pixels, segment_ids = torch.cat(pixels), torch.cat(segment_ids)
    pixel_labels, segment_labels = torch.cat(pixel_labels), torch.cat(segment_labels)
    prototypes = segment_means(pixels, segment_ids, offset)
    loss = vmf_n_loss(pixels, segment_ids, pixel_labels, prototypes, segment_labels, segsort_cfg["kappa"],
                      bank.prototypes(), bank.labels())
    bank.push(prototypes, segment_labels)
    return loss


def unsupervised_loss(embeddings, segments, segsort_cfg, bank: MemoryBank):
    """Eq. 8 with the pseudo-segments as the segments, prototypes over the whole batch."""
    pixels, segment_ids, offset = [], [], 0
    for emb, seg in zip(embeddings, segments):
        valid = seg != IGNORE_LABEL
        if not valid.any():
            continue
        ids = compact_ids(seg[valid])
        pixels.append(emb[:, valid].T)
        segment_ids.append(ids + offset)
        offset += int(ids.max()) + 1
    if not pixels:
        return None
    pixels, segment_ids = torch.cat(pixels), torch.cat(segment_ids)
    prototypes = segment_means(pixels, segment_ids, offset)
    loss = vmf_loss(pixels, segment_ids, prototypes, segsort_cfg["kappa"], bank.prototypes())
    bank.push(prototypes)
    return loss


def softmax_loss(logits, labels):
    """The baseline: pixel-wise cross-entropy, logits upsampled bilinearly to the crop, ignore pixels skipped."""
    if not (labels != IGNORE_LABEL).any():
        return None
    logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_LABEL)


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
          seed: int, log_path: Path, resume_path: Path, checkpoint_every: int, config: dict) -> None:
    """Train `model` in place, writing a per-step log to `log_path`; resumable from `resume_path`.

    objective: "supervised" (vMF-N on labels), "unsupervised" (vMF on pseudo-segments) or "softmax".
    `config` (everything that defines the run) is hashed so a stale resume state is never used.
    """
    check_split(dataset)
    steps, batch_size, crop = schedule["steps"], schedule["batch_size"], schedule["crop"]
    optimizer = make_optimizer(model, schedule["lr"], optim_cfg)
    bank = MemoryBank(segsort_cfg["memory_batches"])
    digest = config_digest(config)
    start, log_rows = 0, []
    if resume_path.is_file():
        state = load_checkpoint(resume_path)
        if state["digest"] == digest:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            bank.load_state(state["bank"])
            start, log_rows = state["step"], state["log"]
            print(f"resuming from step {start} ({resume_path})")

    model.train()
    progress = tqdm(range(start, steps), initial=start, total=steps, desc=log_path.parent.name, mininterval=5)
    for step in progress:
        tic = time.perf_counter()
        lr = poly_lr(schedule["lr"], step, steps, optim_cfg["poly_power"])
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_multiplier"]
        indices = batch_indices(step, batch_size, len(dataset), seed)
        images, labels, segments, locations, ids = make_batch(dataset, indices, step, seed, crop, optim_cfg)
        torch.manual_seed(step_seed(seed, step))  # dropout draws, reproducible on resume
        outputs = model(images)
        size = outputs.shape[-2:]
        if objective == "softmax":
            loss = softmax_loss(outputs, labels)
        elif objective == "supervised":
            loss = supervised_loss(outputs, to_embedding_grid(labels, size), to_embedding_grid(locations, size),
                                   dataset.num_classes, segsort_cfg, bank)
        else:
            loss = unsupervised_loss(outputs, to_embedding_grid(segments, size), segsort_cfg, bank)
        if loss is None:  # every pixel of every crop was ignore: nothing to learn from
            continue
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss ({loss.item()}) at step {step} on images {ids}; "
                                f"the last good state is kept in {resume_path}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds = time.perf_counter() - tic
        log_rows.append({"step": step + 1, "loss": round(loss.item(), 6), "lr": lr,
                         "images_per_second": round(batch_size / seconds, 3)})
        progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_checkpoint(resume_path, {"digest": digest, "step": step + 1, "model": model.state_dict(),
                                          "optimizer": optimizer.state_dict(), "bank": bank.state(),
                                          "log": log_rows})
    if not log_rows:
        raise RuntimeError(f"{log_path.parent.name}: every crop was ignore, nothing was trained")
    write_log(log_path, log_rows)


def write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "images_per_second"])
        writer.writeheader()
        writer.writerows(rows)
