"""Many explanations at once: the dashboard's worker pool against threads in one process.

N = 1, 2, 4, 8 copies of one explanation (exact-shapley on the 12-feature block MLP of the
tabular suite, on the CPU) start together, through the pool the dashboard uses
(`whybox.dashboard.jobs`, the operator's default workers and threads per job, model and
data sent as uploads are) and, as the dashboard computed before the pool, each in a thread
of one process with torch's default threads. Throughput (jobs per second) at each N is
compared with one job alone in the same way; so is one job while another program keeps a
core busy. Then the latency of a click, a one-row explanation, while four such jobs run,
and the first click after the pool has started against the same click in-process.
`python -m benchmarks --only concurrency`; timings never gate a test.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from benchmarks.common import Record, max_abs
from benchmarks.tabular import block_mlp, gaussian_data
from whybox.dashboard.jobs import JobSpec, Source
from whybox.dashboard.jobs.pool import LocalPool
from whybox.explainers.shapley import ExactShapley
from whybox.model_zoo import load_data, load_model
from whybox.model_zoo.model import sha256_of
from whybox.model_zoo.safetensors_models import save_safetensors

N_FEATURES = 12
PARAMS = {"device": "cpu"}
BUSY = 4
"""Jobs kept running while the clicks are timed."""


def concurrency_suite(
    rows: int = 30,
    counts: tuple[int, ...] = (1, 2, 4, 8),
    clicks: int = 20,
    repeat: int = 3,
) -> list[Record]:
    """Throughput at each count in `counts` of simultaneous `rows`-row jobs, pool against
    threads; click latency under load (p50, p95 of `clicks`); the first click."""
    raw_model, raw_data = _upload()
    model = load_model(raw_model, name="block-mlp.safetensors", isolated=False)
    data = load_data(raw_data, model, name="gaussian.csv")
    sources = (
        Source.of_upload(raw_model, "block-mlp.safetensors", sha256_of(raw_model)),
        Source.of_upload(raw_data, "gaussian.csv", sha256_of(raw_data), label=None),
    )

    def spec(index: np.ndarray) -> JobSpec:
        return JobSpec(*sources, "exact-shapley", PARAMS, index)

    def here(index: np.ndarray):
        return ExactShapley(**PARAMS).explain(model, data, rows=index)

    block = np.arange(rows)
    here(block[:1])  # the engine's first call, not timed
    started = time.perf_counter()
    pool = LocalPool()
    pool.wait_ready(600)
    ready_s = time.perf_counter() - started
    shape = f"{pool.size} workers x {pool.threads} thread{'s' * (pool.threads > 1)}"
    ours, peer = f"worker pool ({shape})", f"threads (torch {torch.get_num_threads()} each)"
    try:
        first_s, warm_s, first_here_s = _first_click(pool, spec, here)
        for job in [pool.submit(spec(block[:1])) for _ in range(pool.size + pool.standby)]:
            job.result(600)  # each worker loads the model and data once, not timed
        pooled, threaded = dict.fromkeys(counts, float("inf")), dict.fromkeys(counts, float("inf"))
        for _ in range(repeat):  # rounds interleave the counts: a busy moment hits them all
            for n in counts:
                pooled[n] = min(pooled[n], _pool_batch(pool, spec(block), n))
                threaded[n] = min(threaded[n], _thread_batch(here, block, n))
        error = max_abs(pool.submit(spec(block)).result(600).values, here(block).values)
        with _busy_core():
            busy = (
                _best(repeat, lambda: _pool_batch(pool, spec(block), 1)),
                _best(repeat, lambda: _thread_batch(here, block, 1)),
            )
        pool_clicks = _clicks(
            lambda i: pool.submit(spec(np.array([i]))).result(600),
            _pool_load(pool, spec(block)),
            clicks,
        )
        thread_clicks = _clicks(lambda i: here(np.array([i])), _thread_load(here, block), clicks)
    finally:
        pool.shutdown()

    workload = f"MLP {N_FEATURES} features, exact-shapley, {rows} rows a job"
    records = []
    for n in counts:
        pool_ratio = (n / pooled[n]) / (1 / pooled[counts[0]])
        thread_ratio = (n / threaded[n]) / (1 / threaded[counts[0]])
        records.append(
            Record(
                f"{n} simultaneous job{'s' * (n > 1)}: {workload}",
                ours,
                peer,
                pooled[n],
                threaded[n],
                error if n == counts[0] else None,
                None,
                "cpu",
                note=f"throughput vs {counts[0]} alone: pool {pool_ratio:.2f}x, threads "
                f"{thread_ratio:.2f}x"
                + ("; error: max abs, pool vs in-process values" if n == counts[0] else ""),
            )
        )
    records.append(
        Record(
            f"1 job while another process keeps a core busy: {workload}",
            ours,
            peer,
            *busy,
            None,
            None,
            "cpu",
            note=f"{busy[0] / pooled[counts[0]]:.2f}x the pool's time alone, "
            f"{busy[1] / threaded[counts[0]]:.2f}x the threads' time alone",
        )
    )
    for q in (50, 95):
        records.append(
            Record(
                f"one-row click while {BUSY} jobs run: p{q} of {clicks}",
                ours,
                peer,
                _percentile(pool_clicks, q),
                _percentile(thread_clicks, q),
                None,
                None,
                "cpu",
                note="submit to result; jobs of the workload above kept running",
            )
        )
    records.append(
        Record(
            "first one-row click, model and data not yet in the worker",
            ours,
            "in process (before the pool)",
            first_s,
            first_here_s,
            None,
            None,
            "cpu",
            note=f"the next click {warm_s:.3f} s; the pool was ready {ready_s:.1f} s after "
            "it started (workers import the engine one after the other)",
        )
    )
    return records


def _upload() -> tuple[bytes, bytes]:
    """The tabular suite's block MLP and Gaussian data as the files a user would upload."""
    model = block_mlp(N_FEATURES)
    width = N_FEATURES // 4 * 16
    config = {"n_features": N_FEATURES, "n_outputs": 1, "hidden": [width, width]}
    data = gaussian_data(N_FEATURES)
    raw_model = save_safetensors(
        model.module.cpu(), "mlp", config, "logit", feature_names=data.feature_names
    )
    return raw_model, data.frame.to_csv(index=False).encode()


def _best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def _pool_batch(pool: LocalPool, spec: JobSpec, n: int) -> float:
    started = time.perf_counter()
    for job in [pool.submit(spec) for _ in range(n)]:
        job.result(600)
    return time.perf_counter() - started


def _thread_batch(here: Callable, block: np.ndarray, n: int) -> float:
    threads = [threading.Thread(target=here, args=(block,)) for _ in range(n)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def _first_click(pool: LocalPool, spec: Callable, here: Callable) -> tuple[float, float, float]:
    """Seconds of a one-row job on a fresh worker, of the next one, and in-process."""
    times = []
    for row in (0, 1):
        started = time.perf_counter()
        pool.submit(spec(np.array([row]))).result(600)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    here(np.array([0]))
    return times[0], times[1], time.perf_counter() - started


@contextlib.contextmanager
def _busy_core() -> Iterator[None]:
    """Another program spinning on one core, as on a server shared with other work."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()


class _Load:
    """`BUSY` long jobs kept running until stopped."""

    def __init__(self, start: Callable[[], Callable[[], bool]]) -> None:
        self.start, self.stopped = start, threading.Event()
        self.thread = threading.Thread(target=self._keep, daemon=True)
        self.running: list[Callable[[], bool]] = []

    def _keep(self) -> None:
        self.running = [self.start() for _ in range(BUSY)]
        while not self.stopped.wait(0.02):
            self.running = [done for done in self.running if not done()]
            self.running += [self.start() for _ in range(BUSY - len(self.running))]

    def __enter__(self) -> _Load:
        self.thread.start()
        time.sleep(1.0)  # the jobs are under way
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        while not all(done() for done in self.running):  # the next measurement starts idle
            time.sleep(0.05)


def _pool_load(pool: LocalPool, spec: JobSpec) -> _Load:
    return _Load(lambda: pool.submit(spec).done)


def _thread_load(here: Callable, block: np.ndarray) -> _Load:
    def start() -> Callable[[], bool]:
        thread = threading.Thread(target=here, args=(block,), daemon=True)
        thread.start()
        return lambda: not thread.is_alive()

    return _Load(start)


def _clicks(click: Callable[[int], object], load: _Load, clicks: int) -> list[float]:
    latencies = []
    with load:
        for row in range(100, 100 + clicks):
            started = time.perf_counter()
            click(row)
            latencies.append(time.perf_counter() - started)
    return latencies


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
