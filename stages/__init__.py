"""tunebuild: one module per pipeline stage (see dvc.yaml); shared pieces in stages.lib."""
import os

# polars' allocator (jemalloc) hands freed pages back to the system and the next buffer faults them in
# again: the data stages allocate and free tens of MB per chunk and step, so keeping them halves the page
# faults (curate, 1M rows: 1.4M -> 0.7M faults, a second of 14) for a peak RSS ~15% higher. Set before
# polars is imported (here, the package of every stage); worker processes inherit it.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
