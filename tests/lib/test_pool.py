import os
import time

from tunebuild.pool import process_map


def pid_after(seconds: float) -> tuple[float, int]:
    time.sleep(seconds)
    return seconds, os.getpid()


def test_process_map_keeps_order_and_the_caller_works_too():
    delays = [0.3, 0.0, 0.0, 0.2, 0.0, 0.1, 0.0, 0.0]
    with process_map(2) as mapper:
        out = list(mapper(pid_after, delays))
    assert [d for d, _ in out] == delays
    pids = {pid for _, pid in out}
    assert os.getpid() in pids and len(pids) == 2  # one spawned process, and this one
    with process_map(1) as mapper:
        assert list(mapper(abs, [-1, 2])) == [1, 2]
