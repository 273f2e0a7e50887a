"""What every workload shares: the record it returns, fair timing, the machine's name."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Record:
    """One comparison: whybox's method against a peer on the same work.

    Errors are against an exact reference where one exists (`note` says which measure),
    else against the peer's values; None where neither applies. `peer_s` is None when the
    peer failed (out of memory, say: `note` says why) or there is none. `efficiency` is
    (model rows the method evaluates x seconds per row of a plain forward pass) / ours_s.
    """

    workload: str
    ours: str
    peer: str
    ours_s: float
    peer_s: float | None
    ours_error: float | None
    peer_error: float | None
    device: str
    speedup: float | None = None
    efficiency: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.speedup is None and self.peer_s is not None:
            self.speedup = self.peer_s / self.ours_s


def race(runs: dict[str, Callable[[], Any]], repeat: int = 3) -> dict[str, tuple[float, Any]]:
    """Best wall time of each run over `repeat` rounds, after one warm-up round, and its
    last result. Rounds interleave the runs, so a busy moment on the machine hits all."""
    results = {name: run() for name, run in runs.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], results[name]) for name in runs}


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def forward_seconds_per_row(module: torch.nn.Module, n_features: int, rows: int) -> float:
    """Seconds per row of a plain forward pass over `rows` rows (at most 2^18, 2^22 on a
    GPU), at its best
    batch size (CPU caches favour small ones, GPUs large ones): the floor for any
    perturbation method that needs that many rows."""
    dev = next(module.parameters()).device
    largest = 22 if dev.type == "cuda" else 18
    rows = min(rows, 2**largest)
    inputs = torch.randn(rows, n_features, device=dev)
    sizes = [2**k for k in range(10, largest + 1, 2) if 2**k <= rows] or [rows]
    with torch.inference_mode():
        timings = race(
            {
                str(size): lambda size=size: [module(part) for part in inputs.split(size)]
                for size in sizes
            },
            repeat=2,
        )
    return min(seconds for seconds, _ in timings.values()) / rows


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max())


def relative_error(estimate: np.ndarray, exact: np.ndarray) -> float:
    """Mean absolute error over the mean absolute exact value."""
    return float(np.abs(estimate - exact).mean() / np.abs(exact).mean())


def table(records: list[Record]) -> str:
    lines = [
        "| workload | whybox | peer | whybox s | peer s | speedup | whybox error | peer error "
        "| efficiency | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        cells = [
            r.workload,
            r.ours,
            r.peer,
            f"{r.ours_s:.3f}",
            _number(r.peer_s, ".3f"),
            _number(r.speedup, ".2f", "x"),
            _number(r.ours_error, ".2g"),
            _number(r.peer_error, ".2g"),
            _number(r.efficiency, ".2f"),
            r.note,
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def _number(value: float | None, spec: str, suffix: str = "") -> str:
    return "" if value is None else f"{value:{spec}}{suffix}"
