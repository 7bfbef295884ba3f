"""Progress a person can follow on stderr: `<what> done/total unit (percent), rate, time left`, at most
every EVERY seconds and at the end; silent when `what` is empty and on ranks other than 0. Output
files never change with it."""
from __future__ import annotations

import sys
import time

EVERY = 10.0  # seconds between two lines


class Progress:
    def __init__(self, what: str, total: int, unit: str = "rows"):
        self.what, self.total, self.unit, self.done = what, total, unit, 0
        self.started = self.last = time.perf_counter()

    def tick(self, n: int = 1, note: str = "") -> None:
        from tunebuild import launch

        self.done += n
        now = time.perf_counter()
        if not self.what or launch.rank() != 0:
            return
        if now - self.last < EVERY and self.done < self.total:
            return
        self.last, spent = now, now - self.started
        rate = self.done / spent if spent > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        print(f"{self.what}: {self.done}/{self.total} {self.unit} "
              f"({100 * self.done / max(self.total, 1):.0f}%), {rate:.1f} {self.unit}/s, "
              f"{spent:.0f}s elapsed, ~{left:.0f}s left{note}", file=sys.stderr, flush=True)
