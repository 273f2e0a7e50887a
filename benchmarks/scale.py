"""Past one process: rows per second on 1 and 2 local Ray workers against the same
partitions explained in this process, and a table larger than memory streamed through
tree-shap by `whybox explain --stream` (its time and the peak memory of its process)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import Record
from benchmarks.trees import synthetic_tree_file
from whybox.dashboard.jobs import batch
from whybox.dashboard.jobs.partitions import PartitionedTable
from whybox.explainers import registry
from whybox.model_zoo import load_model

MB = 2**20
WRITE_ROWS = 500_000


def write_table(path: Path, rows: int, n_features: int, seed: int = 0) -> None:
    """`rows` standard normal rows as float32 Parquet, written in pieces (never all held)."""
    rng = np.random.default_rng(seed)
    schema = pa.schema([(f"f{i}", pa.float32()) for i in range(n_features)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, WRITE_ROWS):
            block = rng.standard_normal((min(WRITE_ROWS, rows - start), n_features))
            frame = pd.DataFrame(block.astype(np.float32), columns=schema.names)
            writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))


def _explained(job: batch.BatchJob, table: PartitionedTable, runner) -> tuple[float, np.ndarray]:
    """Seconds to explain every partition through `runner`, and the values in row order."""
    started = time.perf_counter()
    parts = sorted(runner(job, table.partitions()), key=lambda part: part.explanation.rows[0])
    seconds = time.perf_counter() - started
    failed = [part for part in parts if isinstance(part, batch.PartFailure)]
    if failed:
        raise RuntimeError(f"{failed[0].name}: {failed[0].error}")
    return seconds, np.concatenate([part.explanation.values for part in parts])


def ray_scaling(
    rows: int = 2_000, n_features: int = 10, partition_rows: int = 100, samples: int = 512
) -> list[Record]:
    """kernel-shap (CPU-bound, model-agnostic) on an XGBoost model: one process against a
    local Ray runtime of 1 and of 2 worker processes, on the same partitions; the error
    column is the largest difference from the one-process values."""
    import ray

    from whybox.dashboard.jobs.ray_cluster import run_on_ray

    raw, _ = synthetic_tree_file(n_features, 50, 4)
    model = load_model(raw, name="model.json")
    explainer = registry.get("kernel-shap")(samples=samples, background=50)
    with tempfile.TemporaryDirectory() as folder:
        data, model_file = Path(folder) / "data.parquet", Path(folder) / "model.json"
        write_table(data, rows, n_features)
        model_file.write_bytes(raw)
        table = PartitionedTable(data, partition_rows)
        job, _ = batch.plan(str(model_file), model, table, explainer, None, None, None, False)
        alone, expected = _explained(job, table, batch.run_here)
        timings = {}
        for workers in (1, 2):
            ray.init("local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
            try:
                runner = lambda job, parts, n=workers: run_on_ray(job, parts, n)  # noqa: E731
                # Workers started, the engine imported and the model loaded before the clock
                list(runner(job, itertools.islice(table.partitions(), 2 * workers)))
                timings[workers] = _explained(job, table, runner)
            finally:
                ray.shutdown()
    workload = (
        f"kernel-shap ({samples} coalitions, background 50), XGBoost 50 trees, {rows:,} rows x "
        f"{n_features} features in partitions of {partition_rows}"
    )
    one_s = timings[1][0]
    return [
        Record(
            f"{workload}: {workers} Ray worker{'s' * (workers > 1)}",
            f"Ray, {workers} worker{'s' * (workers > 1)}",
            "one process",
            seconds,
            alone,
            float(np.max(np.abs(values - expected))),
            None,
            "cpu",
            note=f"{rows / seconds:,.0f} rows/s against {rows / alone:,.0f} in one process"
            + (f"; {one_s / seconds:.2f}x one Ray worker" if workers > 1 else ""),
        )
        for workers, (seconds, values) in timings.items()
    ]


def streaming(
    rows: int = 10_000_000, n_features: int = 50, trees: int = 10, depth: int = 4
) -> Record:
    """`whybox explain --stream` of a `rows`-row Parquet file through tree-shap, in a child
    process: its wall time, rows per second and peak resident memory (the kernel's
    high-water mark of the process)."""
    raw, _ = synthetic_tree_file(n_features, trees, depth)
    with tempfile.TemporaryDirectory() as folder:
        data, model_file = Path(folder) / "data.parquet", Path(folder) / "model.json"
        write_table(data, rows, n_features)
        model_file.write_bytes(raw)
        size = data.stat().st_size
        command = [
            str(Path(sys.executable).with_name("whybox")), "explain", str(model_file), str(data),
            "--explainer", "tree-shap", "--stream", "--out", str(Path(folder) / "run"),
        ]  # fmt: skip
        started = time.perf_counter()
        child = subprocess.Popen(command, env=os.environ | {"TQDM_DISABLE": "1"})
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not earlier ones'
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise RuntimeError(f"whybox explain --stream exited with {child.returncode}")
        peak = usage.ru_maxrss * 1024
        written = sum(p.stat().st_size for p in (Path(folder) / "run" / "attributions").iterdir())
    return Record(
        f"whybox explain --stream: {rows:,} rows x {n_features} features of Parquet "
        f"({size / MB:,.0f} MB float32), tree-shap, XGBoost {trees} trees depth {depth}",
        "tree-shap, partitions of 100,000 rows",
        "none",
        seconds,
        None,
        None,
        None,
        "cpu",
        note=f"{rows / seconds:,.0f} rows/s; peak resident memory {peak / MB:,.0f} MB; "
        f"attributions written {written / MB:,.0f} MB",
    )
