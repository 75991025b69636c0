"""Segment sorting (paper Sec. 3.2): the vMF loss (Eq. 8), the vMF-N loss (Eq. 10) and the memory bank.

Both losses take every pixel of a batch, with segment id -1 for the pixels that do not count (void,
padding), and a table of prototypes, the batch's then the memory bank's, with label -1 for the rows not
in use (a batch's rows beyond its segment count, the bank's empty rows): masks instead of boolean
indexing, so that the loss needs no host synchronisation.
"""
from __future__ import annotations

import torch


def masked_logsumexp(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """log sum_j exp(logits_ij) over the j where keep_ij, per row (about -87 in float32 for an empty row).

    The masked terms are multiplied by zero after exp, not filled with a huge negative number before:
    exp of an underflowing argument takes a slow path on CPUs (6x slower in ATen's AVX2 kernel, measured),
    and most of a SegSort logit matrix is masked. The shift by the row's kept maximum (no gradient: the
    result does not depend on it) keeps every exp(.) in (0, 1], the masked ones at exp(0).
    """
    peak = logits.detach().masked_fill(~keep, float("-inf")).amax(dim=1, keepdim=True).nan_to_num(neginf=0.0)
    terms = torch.exp(torch.where(keep, logits - peak, 0)) * keep                # (N, T), 0 where masked
    return peak.squeeze(1) + terms.sum(dim=1).clamp(min=torch.finfo(logits.dtype).tiny).log()


def mean_over_pixels(losses: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    """The mean of the per-pixel losses over the pixels that count (segment id >= 0); 0 if none does."""
    counted = segment_ids >= 0
    return torch.where(counted, losses, 0).sum() / counted.sum().clamp(min=1)


def vmf_loss(embeddings: torch.Tensor, segment_ids: torch.Tensor, prototypes: torch.Tensor, kappa: float,
             in_use: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 8, averaged over pixels: -log exp(k mu_c.v_i) / sum_l exp(k mu_l.v_i).

    embeddings (N, D) unit, segment_ids (N,) index into prototypes (T, D) unit (-1: not counted); the
    pixel's own segment c is the positive and every other prototype in use (in_use (T,) bool, default all:
    the batch's segments and the memory bank's) a negative.
    """
    logits = kappa * embeddings @ prototypes.T                                    # (N, T)
    keep = torch.ones(1, len(prototypes), dtype=torch.bool, device=logits.device) if in_use is None \
        else in_use[None, :]
    own = logits.gather(1, segment_ids.clamp(min=0)[:, None]).squeeze(1)          # (N,)
    return mean_over_pixels(masked_logsumexp(logits, keep) - own, segment_ids)


def vmf_n_loss(embeddings: torch.Tensor, segment_ids: torch.Tensor, pixel_labels: torch.Tensor,
               prototypes: torch.Tensor, prototype_labels: torch.Tensor, kappa: float) -> torch.Tensor:
    """Eq. 10, averaged over pixels:

        -log sum_{s in C+_i} exp(k mu_s.v_i) / sum_{l != c} exp(k mu_l.v_i)

    C+_i are the prototypes with the pixel's label other than its own segment c (the batch's and the
    memory bank's). A pixel with no such prototype falls back to the vMF loss of Eq. 8 (its own
    segment is the positive, every prototype is in the denominator).
    embeddings (N, D) unit, segment_ids (N,) (-1: not counted), pixel_labels (N,); prototypes (T, D) and
    their labels (T,), -1 for a row not in use.
    """
    logits = kappa * embeddings @ prototypes.T                                    # (N, T)
    in_use = (prototype_labels >= 0)[None, :]                                     # (1, T)
    columns = torch.arange(len(prototypes), device=logits.device)
    own = segment_ids[:, None] == columns[None, :]                                # (N, T): segment c
    positive = (pixel_labels[:, None] == prototype_labels[None, :]) & ~own        # (N, T): C+_i
    vmf_n = masked_logsumexp(logits, in_use & ~own) - masked_logsumexp(logits, positive)
    vmf = masked_logsumexp(logits, in_use) - logits.gather(1, segment_ids.clamp(min=0)[:, None]).squeeze(1)
    return mean_over_pixels(torch.where(positive.any(dim=1), vmf_n, vmf), segment_ids)


class MemoryBank:
    """Prototypes and labels of the previous `num_batches` batches, first in first out, without gradient.

    A preallocated ring buffer of slots, one batch each, with the label -1 on the rows not in use. A push
    overwrites the slot of the oldest batch, chosen on the device by the push number each slot holds, and
    the loss reads the whole buffer with its mask: no concatenation of batches, no host sync. A batch with
    no row in use (every pixel void) is not kept: it would evict a real batch. The buffer grows (rarely)
    when a batch has more rows than any before.
    """

    def __init__(self, num_batches: int):
        self.num_batches = num_batches
        self.rows: torch.Tensor | None = None        # (num_batches, capacity, D)
        self.row_labels: torch.Tensor | None = None  # (num_batches, capacity), -1: not in use
        self.pushed: torch.Tensor | None = None      # (num_batches,) push number of each slot's batch, -1: empty
        self.pushes = 0

    def push(self, prototypes: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep one batch's prototypes (S, D) and labels (S,), -1 for a row not in use."""
        if self.num_batches == 0:
            return
        if self.rows is None or len(prototypes) > self.rows.shape[1] or self.rows.device != prototypes.device:
            self._allocate(len(prototypes), prototypes)
        capacity = self.rows.shape[1]
        rows = prototypes.detach().new_zeros(capacity, prototypes.shape[1])
        row_labels = torch.full((capacity,), -1, dtype=torch.long, device=prototypes.device)
        rows[:len(prototypes)], row_labels[:len(labels)] = prototypes.detach(), labels
        self.pushes += 1
        keep = (row_labels >= 0).any()
        slot = self.pushed.argmin(dim=0, keepdim=True)                # (1,): an empty slot, else the oldest
        old_rows, old_labels = self.rows.index_select(0, slot)[0], self.row_labels.index_select(0, slot)[0]
        self.rows.index_copy_(0, slot, torch.where(keep, rows, old_rows)[None])
        self.row_labels.index_copy_(0, slot, torch.where(keep, row_labels, old_labels)[None])
        self.pushed.index_copy_(0, slot, torch.where(keep, self.pushes, self.pushed.index_select(0, slot)))

    def _allocate(self, capacity: int, like: torch.Tensor) -> None:
        """A buffer of at least `capacity` rows per slot on `like`'s device, keeping what it holds."""
        old = 0 if self.rows is None else self.rows.shape[1]
        rows = like.new_zeros(self.num_batches, max(capacity, old), like.shape[1])
        row_labels = torch.full(rows.shape[:2], -1, dtype=torch.long, device=like.device)
        pushed = torch.full((self.num_batches,), -1, dtype=torch.long, device=like.device)
        if self.rows is not None:
            rows[:, :old], row_labels[:, :old] = self.rows.to(like.device), self.row_labels.to(like.device)
            pushed[:] = self.pushed.to(like.device)
        self.rows, self.row_labels, self.pushed = rows, row_labels, pushed

    def prototypes(self) -> torch.Tensor | None:
        """(num_batches * capacity, D): every row of the buffer; None before the first push."""
        return None if self.rows is None else self.rows.reshape(-1, self.rows.shape[2])

    def labels(self) -> torch.Tensor | None:
        """(num_batches * capacity,): the rows' labels, -1 for a row not in use."""
        return None if self.rows is None else self.row_labels.reshape(-1)

    def batches(self) -> list:
        """The batches kept, oldest first, each (prototypes, labels) of its rows in use (host syncs: this is
        for inspection, not for the training step)."""
        if self.rows is None:
            return []
        slots = [s for s in self.pushed.argsort().tolist() if self.pushed[s] >= 0]
        return [(self.rows[s][self.row_labels[s] >= 0], self.row_labels[s][self.row_labels[s] >= 0]) for s in slots]

    def state(self) -> dict:
        """The buffer as it is, for a resume state: a resumed run then sums the same rows in the same order."""
        return {"rows": self.rows, "row_labels": self.row_labels, "pushed": self.pushed, "pushes": self.pushes}

    def load_state(self, state: dict | list, device: torch.device | None = None) -> None:
        """Restore a state(); a list of (prototypes, labels) batches, oldest first, is pushed in order."""
        self.rows = self.row_labels = self.pushed = None
        self.pushes = 0
        if isinstance(state, dict):
            if state["rows"] is not None:
                self.rows, self.row_labels, self.pushed = (state[key].to(device)
                                                           for key in ("rows", "row_labels", "pushed"))
            self.pushes = state["pushes"]
            return
        for prototypes, labels in state:
            prototypes = prototypes.to(device)
            labels = torch.zeros(len(prototypes), dtype=torch.long, device=device) if labels is None else labels
            self.push(prototypes, labels.to(device))
