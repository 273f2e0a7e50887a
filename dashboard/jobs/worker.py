"""One worker process of the pool: it takes its thread budget, then runs jobs one at a time,
sending progress and the result over its pipe.

A worker starts light and imports what its jobs need as they come (the engine's imports are
lazy): torch, Captum, SHAP and the tree libraries take about 0.5 GB in each process that
imports them, so idle workers that imported them all would hold more memory than the data
of a million rows. The first job of a worker pays for its imports once (a few seconds).

The thread budget is in the worker's environment before torch, OpenMP or a BLAS library
loads (their thread pools read it once), then held at run time as well (torch.set_num_threads and
threadpoolctl, for libraries that loaded earlier or reset it): jobs in several workers
then share the cores instead of spinning against each other.

Messages to the pool: ("ready", info), ("started", job, info), ("progress", job, done,
total), ("done", job, explanation), ("failed", job, exception, traceback text). From the
pool: (job, spec) to run, or None to stop. A large explanation travels as `Spilled`: its
arrays written once to a file, read once into their final place by the server (a pickle
through the pipe would hold two more copies of them on each side at once).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OMP_THREAD_LIMIT",  # caps OpenMP even where a library asks for more (XGBoost's nthread)
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
ALLOCATOR = {
    # glibc gives large freed blocks back to the system at once, so every chunk of a job
    # faults its pages in afresh: a third of exact-shapley's time, in the kernel, and the
    # part that does not scale over cores. A worker keeps up to 256 MiB for the next chunk.
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
}
PROGRESS_EVERY_S = 0.1
SPILL_BYTES = 16 * 2**20
"""Results whose arrays are larger than this travel as `Spilled`."""


@dataclass(frozen=True)
class Spilled:
    """A result pickled without its large arrays (`header`, protocol 5), whose arrays are in
    the file at `path`, one after the other, of `sizes` bytes."""

    header: bytes
    path: str
    sizes: tuple[int, ...]

    def load(self) -> Any:
        """The result, each array read straight into its own memory; the file is removed."""
        buffers = []
        try:
            with open(self.path, "rb") as file:
                for size in self.sizes:
                    buffer = bytearray(size)
                    if file.readinto(buffer) != size:
                        raise RuntimeError(f"the result file {self.path} is truncated")
                    buffers.append(buffer)
        finally:
            self.discard()
        return pickle.loads(self.header, buffers=buffers)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def spilled(result: Any) -> Any:
    """`result` itself where its arrays are small, else a `Spilled` of it."""
    buffers: list[pickle.PickleBuffer] = []
    header = pickle.dumps(result, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    if sum(view.nbytes for view in views) <= SPILL_BYTES:
        return result
    descriptor, path = tempfile.mkstemp(prefix="whybox-result-")
    with os.fdopen(descriptor, "wb") as file:
        for view in views:
            file.write(view)
    return Spilled(header, path, tuple(view.nbytes for view in views))


def environment(threads: int) -> dict[str, str]:
    """What a worker's environment adds: its thread budget and the allocator's settings,
    read once when the process and its libraries start."""
    return {**dict.fromkeys(THREAD_VARIABLES, str(threads)), **ALLOCATOR}


def main(conn: Connection, threads: int) -> None:
    """The worker's life: budget, then jobs until the pool says stop or goes away.
    Started with `environment(threads)` (see pool.py); the thread variables are set here
    too, for a launcher that did not."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    # Ctrl-C in the server's terminal reaches the whole process group; the pool stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send(("ready", {"pid": os.getpid()}))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server went away
            return
        if message is None:
            return
        job_id, spec = message
        table = None if spec.table is None else reduction.recv_handle(conn)
        _run(conn, job_id, spec, threads, table)


def hold_budget(threads: int) -> int:
    """Hold torch, OpenMP and BLAS to `threads`; returns torch's thread count (`threads`
    before torch is imported: it takes the budget from the environment when it loads)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)  # every library loaded by now, OpenMP and BLAS alike
    torch = sys.modules.get("torch")
    if torch is None:  # a job of trees or scikit-learn needs no torch: it is not imported
        return threads
    # Once, before torch's first parallel work; later calls raise, and intra-op is what counts.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def _run(conn: Connection, job_id: str, spec: Any, threads: int, table: int | None) -> None:
    from whybox.dashboard.jobs import rebuild

    conn.send(("started", job_id, {"threads": hold_budget(threads)}))
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done >= total or now - last >= PROGRESS_EVERY_S:
            last = now
            conn.send(("progress", job_id, int(done), int(total)))

    try:
        explanation = rebuild.run(spec, progress, table)
    except Exception as exc:
        conn.send(("failed", job_id, _portable(exc), traceback.format_exc()))
        return
    try:
        conn.send(("done", job_id, spilled(explanation)))
    except Exception as exc:  # an explainer (a plugin's) put something unpicklable in it
        conn.send(("failed", job_id, _portable(exc), traceback.format_exc()))


def _portable(exc: Exception) -> Exception:
    """`exc` itself where it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
