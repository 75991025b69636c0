"""Operator calls and host synchronisations of a piece of work, counted with the PyTorch profiler.

On a CPU these counts are the evidence of what would stall a GPU: every host sync waits for the device
queue to drain, and every operator call is at least one kernel launch.
"""
from __future__ import annotations

from typing import Callable

import torch

# Operators that make the host wait for the device: a scalar read (`.item()`, `int(t)`, `if t.any()`), a
# data-dependent output size (boolean indexing, `nonzero`, `unique`, `masked_select`).
SYNC_OPERATORS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::unique_dim",
                  "aten::unique_consecutive", "aten::masked_select"}


def count_operators(work: Callable[[], object]) -> tuple[int, int]:
    """(aten operator calls, host syncs among them) of one call of `work`."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        work()
    names = [event.name for event in profile.events() if event.name.startswith("aten::")]
    return len(names), sum(name in SYNC_OPERATORS for name in names)
