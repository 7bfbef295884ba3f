"""tunebuild: one module per pipeline stage (see dvc.yaml); shared pieces in tunebuild."""
import os
import sys

# polars' allocator (jemalloc) hands freed pages back to the system and the next buffer faults them in
# again. Ingest and curate allocate and free tens of MB per chunk and step: keeping the pages halves their
# page faults (curate, 1M rows: 1.4M -> 0.7M, a second of 14) for a peak RSS ~30% higher. Split keeps
# big frames between phases, and there the retained pages cost more memory than they save time (1M rows:
# 0.9 -> 1.4 GB), so only these two. Set before polars is loaded (this package is imported first by
# `python -m stages.<verb>`); their worker processes inherit it.
if sys.orig_argv[1:3] in (["-m", "stages.ingest"], ["-m", "stages.curate"]):
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
