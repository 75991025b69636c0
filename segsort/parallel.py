"""Map a function over work items on several processes, with a progress bar."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator

from tqdm import tqdm


def map_with_progress(fn: Callable, items: Iterable, cores: int, desc: str, unit: str = "image") -> Iterator:
    """Yield fn(item) for each item, in order, computed on `cores` processes (in this process if 1).

    `fn` must be a module-level function of the library (the workers import it). The first exception
    raised by fn stops the map and is raised here.
    """
    items = list(items)
    with tqdm(total=len(items), desc=desc, unit=unit) as bar:
        if cores <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update()
            return
        # spawn, not fork: the parent may hold torch threads, which do not survive a fork
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=cores, mp_context=context)
        try:
            for result in pool.map(fn, items):
                yield result
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # after an error, skip the items not started
