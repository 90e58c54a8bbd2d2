"""Loaded at start-up by every bot process of ``python -m bench.soak --trace-memory`` (its folder is put first on
PYTHONPATH): Python's allocations are traced, and SIGUSR2 writes a snapshot, so that a drift can be put down to the
lines that allocate it. The work process is forked after this ran, so it is traced and answers SIGUSR2 too.

Not part of the bot: the tracing costs CPU and memory of its own, which is why only this option turns it on.
"""

import os
import signal
import time
import tracemalloc

_FOLDER = os.environ.get("BENCH_TRACEMEM_DIR")

if _FOLDER:
    folder = _FOLDER
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMEM_FRAMES", "8")))

    def _dump(_signum: int, _frame: object) -> None:
        path = os.path.join(folder, f"{os.getpid()}-{time.time_ns()}.snap")
        tracemalloc.take_snapshot().dump(path + ".part")
        os.replace(path + ".part", path)  # the soak reads only whole snapshots

    signal.signal(signal.SIGUSR2, _dump)
