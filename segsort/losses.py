"""Segment sorting (paper Sec. 3.2): the vMF loss (Eq. 8), the vMF-N loss (Eq. 10) and the memory bank."""
from __future__ import annotations

from collections import deque

import torch


def vmf_loss(embeddings: torch.Tensor, segment_ids: torch.Tensor, prototypes: torch.Tensor,
             kappa: float, extra_prototypes: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 8, averaged over pixels: -log exp(k mu_c.v_i) / sum_l exp(k mu_l.v_i).

    embeddings (N, D) unit, segment_ids (N,) index into prototypes (S, D) unit; the pixel's own
    segment c is the positive and every other prototype (and `extra_prototypes` from the memory
    bank, if given) a negative.
    """
    all_prototypes = prototypes if extra_prototypes is None else torch.cat([prototypes, extra_prototypes])
    logits = kappa * embeddings @ all_prototypes.T
    own = logits.gather(1, segment_ids[:, None]).squeeze(1)
    return (torch.logsumexp(logits, dim=1) - own).mean()


def vmf_n_loss(embeddings: torch.Tensor, segment_ids: torch.Tensor, pixel_labels: torch.Tensor,
               prototypes: torch.Tensor, prototype_labels: torch.Tensor, kappa: float,
               bank_prototypes: torch.Tensor | None = None,
               bank_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 10, averaged over pixels:

        -log sum_{s in C+_i} exp(k mu_s.v_i) / sum_{l != c} exp(k mu_l.v_i)

    C+_i are the prototypes with the pixel's label other than its own segment c (the batch's and the
    memory bank's). A pixel with no such prototype falls back to the vMF loss of Eq. 8 (its own
    segment is the positive, every prototype is in the denominator).
    """
    if bank_prototypes is not None:
        prototypes = torch.cat([prototypes, bank_prototypes])
        prototype_labels = torch.cat([prototype_labels, bank_labels])
    logits = kappa * embeddings @ prototypes.T                                   # (N, S)
    own = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, segment_ids[:, None], True)
    positive = (pixel_labels[:, None] == prototype_labels[None, :]) & ~own
    has_positive = positive.any(dim=1)

    minus_inf = torch.finfo(logits.dtype).min
    numerator = torch.logsumexp(logits.masked_fill(~positive, minus_inf), dim=1)
    denominator = torch.logsumexp(logits.masked_fill(own, minus_inf), dim=1)
    vmf_n = denominator - numerator

    own_logit = logits.gather(1, segment_ids[:, None]).squeeze(1)
    vmf = torch.logsumexp(logits, dim=1) - own_logit
    return torch.where(has_positive, vmf_n, vmf).mean()


class MemoryBank:
    """Prototypes (and labels) of the previous `num_batches` batches, first in first out, without gradient.

    A batch without prototypes (every pixel void) is not pushed: it would evict a real batch.
    """

    def __init__(self, num_batches: int):
        self.batches: deque = deque(maxlen=num_batches)

    def push(self, prototypes: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        if self.batches.maxlen and len(prototypes):
            self.batches.append((prototypes.detach().clone(),
                                 None if labels is None else labels.detach().clone()))

    def prototypes(self) -> torch.Tensor | None:
        return torch.cat([p for p, _ in self.batches]) if self.batches else None

    def labels(self) -> torch.Tensor | None:
        return torch.cat([l for _, l in self.batches]) if self.batches else None

    def state(self) -> list:
        return [(p, l) for p, l in self.batches]

    def load_state(self, batches: list, device: torch.device | None = None) -> None:
        self.batches.clear()
        for prototypes, labels in batches:
            self.batches.append((prototypes.to(device), None if labels is None else labels.to(device)))
