"""Worker processes for the data stages: spawned (polars' thread pool does not survive fork), results in order."""
from __future__ import annotations

import collections
import contextlib
import functools
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor


def pooled(fn: Callable, items: Iterable, pool: ProcessPoolExecutor, workers: int) -> Iterator:
    """map(fn, items) on the pool's `workers` processes, in order, with at most `workers` + 1 items in flight."""
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@contextlib.contextmanager
def process_map(workers: int) -> Iterator[Callable]:
    """A `map` that runs on `workers` spawned processes (pooled), or the plain `map` for one worker."""
    if workers <= 1:
        yield map
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield functools.partial(pooled, pool=pool, workers=workers)
