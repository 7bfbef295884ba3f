"""Worker processes for the data stages: spawned (polars' thread pool does not survive fork), results in order.

This process works too: with N workers, N - 1 processes are spawned and a thread
here takes items as well, so one process fewer starts (each start imports the
stage's libraries: about a CPU-second for curate) and no core waits for it.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait

from tunebuild.errors import exit_now


def pooled(fn: Callable, items: Iterable, pool: ProcessPoolExecutor, helpers: int) -> Iterator:
    """map(fn, items), in order: the pool's `helpers` processes and one thread here each take the next item
    as soon as they are free; results that finish early wait for their turn, and at most 2 x (helpers + 1)
    items are handed out and not yet taken (bounded memory)."""
    todo, n, turn = iter(items), 0, 0
    running: dict[Future, int] = {}  # -> the item's number
    mine: set[Future] = set()  # those of them that run here
    finished: dict[int, Future] = {}
    with ThreadPoolExecutor(1) as here:
        while True:
            for spare in [pool] * (helpers - len(running) + len(mine)) + [here] * (not mine):
                if len(running) + len(finished) >= 2 * (helpers + 1):
                    break
                item = next(todo, running)  # `running` marks the end
                if item is running:
                    break
                future = spare.submit(fn, item)
                running[future], n = n, n + 1
                if spare is here:
                    mine.add(future)
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                finished[running.pop(future)] = future
                mine.discard(future)
            while turn in finished:
                yield finished.pop(turn).result()
                turn += 1


def _exit_at_once() -> None:
    atexit.register(exit_now)


@contextlib.contextmanager
def process_map(workers: int) -> Iterator[Callable]:
    """A `map` over `workers` processes, this one included (pooled), or the plain `map` for one worker."""
    if workers <= 1:
        yield map
        return
    # A worker ends at once when the pool shuts down (its results are sent by then): tearing down the modules
    # it imported (pandas, by pandera) takes a fifth of a second that this process would wait for.
    with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_at_once) as pool:
        yield functools.partial(pooled, pool=pool, helpers=workers - 1)
