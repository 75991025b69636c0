"""Segment sorting (paper Sec. 3.2): the vMF loss (Eq. 8), the vMF-N loss (Eq. 10) and the memory bank.

Both losses take every pixel of a batch, with segment id -1 for the pixels that do not count (void,
padding), and a table of prototypes, the batch's then the memory bank's, with label -1 for the rows not
in use (a batch's rows beyond its segment count, the bank's empty rows): masks instead of boolean
indexing, so that the loss needs no host synchronisation. The (pixels x prototypes) matrices are made
for a chunk of pixels at a time and recomputed for the gradient, so their memory stays bounded.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

PIXEL_CHUNK = 32768  # pixels whose (pixels x prototypes) logits are alive at once in a loss (in_pixel_chunks)


def mean_over_pixels(losses: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    """The mean of the per-pixel losses over the pixels that count (segment id >= 0); 0 if none does."""
    counted = segment_ids >= 0
    return torch.where(counted, losses, 0).sum() / counted.sum().clamp(min=1)


def in_pixel_chunks(pixel_losses, pixel_tensors: tuple, shared: tuple) -> torch.Tensor:
    """pixel_losses(*pixel_tensors, *shared) -> (N,), computed over chunks of PIXEL_CHUNK pixels, each
    recomputed in the backward pass (torch.utils.checkpoint) rather than stored: no (N, T) matrix is kept
    for the gradient, and at most one chunk's is alive at a time. A batch of at most PIXEL_CHUNK pixels
    is one call, with the values and gradients of the plain computation."""
    count = len(pixel_tensors[0])
    parts = [checkpoint(pixel_losses, *(t[start:start + PIXEL_CHUNK] for t in pixel_tensors), *shared,
                        use_reentrant=False, preserve_rng_state=False)
             for start in range(0, count, PIXEL_CHUNK)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def shifted_exp(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(exp(logits_ij - m_i), m_i) with m_i the row's largest logit (no gradient: the losses do not depend on
    it). With unit embeddings and prototypes (or the zero rows not in use) |logits| <= kappa, so every term
    lies in [exp(-2 kappa), 1]: no overflow, and no underflow for kappa up to 40 in float32."""
    shift = logits.detach().amax(dim=1, keepdim=True)                             # (N, 1)
    return torch.exp(logits - shift), shift.squeeze(1)


def safe_log(x: torch.Tensor) -> torch.Tensor:
    """log x, finite (and with a zero gradient) where x is 0: a sum over no prototype, in a branch not taken."""
    return x.clamp(min=torch.finfo(x.dtype).tiny).log()


def vmf_pixel_losses(embeddings, segment_ids, prototypes, kappa, in_use) -> torch.Tensor:
    """(N,) the terms of Eq. 8 (see vmf_loss)."""
    logits = kappa * embeddings @ prototypes.T                                    # (N, T)
    terms, shift = shifted_exp(logits)
    total = terms @ in_use.to(terms.dtype)                                        # (N,) sum over l in use
    own = logits.gather(1, segment_ids.clamp(min=0)[:, None]).squeeze(1)          # (N,) k mu_c.v_i
    return safe_log(total) + shift - own


def vmf_loss(embeddings: torch.Tensor, segment_ids: torch.Tensor, prototypes: torch.Tensor, kappa: float,
             in_use: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 8, averaged over pixels: -log exp(k mu_c.v_i) / sum_l exp(k mu_l.v_i).

    embeddings (N, D) unit, segment_ids (N,) index into prototypes (T, D) unit (-1: not counted); the
    pixel's own segment c is the positive and every other prototype in use (in_use (T,) bool, default all:
    the batch's segments and the memory bank's) a negative.
    """
    if in_use is None:
        in_use = torch.ones(len(prototypes), dtype=torch.bool, device=prototypes.device)
    losses = in_pixel_chunks(vmf_pixel_losses, (embeddings, segment_ids), (prototypes, kappa, in_use))
    return mean_over_pixels(losses, segment_ids)


def vmf_n_pixel_losses(embeddings, segment_ids, pixel_labels, prototypes, prototype_labels, kappa,
                       num_classes) -> torch.Tensor:
    """(N,) the terms of Eq. 10 with the vMF fallback (see vmf_n_loss).

    The sums over prototypes are taken per class by one matrix product with the prototypes' one-hot labels:
    exp(k mu_l.v_i) with the own segment's term zeroed, times (T, C), gives for every pixel the sum over
    l != c of each class; the denominator is their total and the numerator its own class's. No (N, T) mask.
    """
    logits = kappa * embeddings @ prototypes.T                                    # (N, T)
    terms, shift = shifted_exp(logits)
    own = segment_ids.clamp(min=0)[:, None]                                       # (N, 1) own segment c
    others = terms.scatter(1, own, 0)                                             # (N, T), l != c
    classes = torch.arange(num_classes, device=logits.device)
    one_hot = (prototype_labels[:, None] == classes[None, :]).to(terms.dtype)     # (T, C), 0 rows: not in use
    per_class = others @ one_hot                                                  # (N, C)
    label = pixel_labels.clamp(max=num_classes - 1)[:, None]                      # void pixels: not counted
    denominator = per_class.sum(dim=1)                                            # sum over l != c
    vmf_n = safe_log(denominator) - safe_log(per_class.gather(1, label).squeeze(1))  # C+_i: c's label, l != c
    own_term = terms.gather(1, own).squeeze(1)
    vmf = safe_log(denominator + own_term) - safe_log(own_term)                   # every prototype, c positive
    has_positive = one_hot.sum(dim=0)[label.squeeze(1)] > 1                       # c is one of its label's
    return torch.where(has_positive, vmf_n, vmf)


def vmf_n_loss(embeddings: torch.Tensor, segment_ids: torch.Tensor, pixel_labels: torch.Tensor,
               prototypes: torch.Tensor, prototype_labels: torch.Tensor, kappa: float,
               num_classes: int) -> torch.Tensor:
    """Eq. 10, averaged over pixels:

        -log sum_{s in C+_i} exp(k mu_s.v_i) / sum_{l != c} exp(k mu_l.v_i)

    C+_i are the prototypes with the pixel's label other than its own segment c (the batch's and the
    memory bank's). A pixel with no such prototype falls back to the vMF loss of Eq. 8 (its own
    segment is the positive, every prototype is in the denominator).
    embeddings (N, D) unit, segment_ids (N,) (-1: not counted), pixel_labels (N,) in 0..num_classes-1 where
    counted; prototypes (T, D) and their labels (T,), -1 for a row not in use (a zero vector).
    """
    losses = in_pixel_chunks(vmf_n_pixel_losses, (embeddings, segment_ids, pixel_labels),
                             (prototypes, prototype_labels, kappa, num_classes))
    return mean_over_pixels(losses, segment_ids)


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
