"""Tree SHAP: whybox's tree-shap vs shap.TreeExplainer and XGBoost's own contributions,
and the memory tree-shap needs for a million rows."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Record, device, max_abs, race
from whybox.explainers.shapley import TreeShap
from whybox.explainers.testing import make_dataset
from whybox.model_zoo import Dataset, Model, demos, load_model

MB = 2**20


def _compare(
    workload: str, model: Model, data: Dataset, repeat: int, dev: str = "cpu"
) -> list[Record]:
    """tree-shap on `dev` vs XGBoost's contributions on `dev` and shap.TreeExplainer on CPU."""
    import shap
    import xgboost

    booster, X = model.native, data.values
    explainer = shap.TreeExplainer(booster)

    def native() -> np.ndarray:
        booster.set_param({"device": dev})
        matrix = xgboost.DMatrix(X, feature_names=booster.feature_names)
        return booster.predict(matrix, pred_contribs=True)[:, :-1]

    def shap_on_cpu() -> np.ndarray:
        # SHAP hands an XGBoost booster's contributions to XGBoost itself, on the device
        # the booster was last set to: the peer on the CPU must set it back.
        booster.set_param({"device": "cpu"})
        return explainer.shap_values(X)

    timings = race(
        {
            "ours": lambda: TreeShap(device=dev).explain(model, data).values,
            "xgboost pred_contribs": native,
            "shap.TreeExplainer (CPU)": shap_on_cpu,
        },
        repeat,
    )
    ours_s, ours = timings.pop("ours")
    return [
        Record(
            workload,
            "tree-shap",
            peer,
            ours_s,
            peer_s,
            max_abs(ours, values),
            0.0,
            dev,
            note="error: max abs vs the peer's values",
        )
        for peer, (peer_s, values) in timings.items()
    ]


def demo_trees(rows: int, repeat: int = 3) -> list[Record]:
    """The demo finance tree model (credit-xgboost) on `rows` resampled rows of its data."""
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    frame = data.frame.sample(rows, replace=rows > len(data), random_state=0)
    data.frame = frame.reset_index(drop=True)
    return _compare(f"credit-xgboost, {rows:,} rows", model, data, repeat)


def synthetic_trees(
    n_features: int, trees: int, depth: int, seed: int = 0
) -> tuple[Model, np.random.Generator]:
    """An XGBoost binary classifier fitted to a synthetic signal (5,000 rows)."""
    model, rng = synthetic_tree_file(n_features, trees, depth, seed)
    return load_model(model, name="synthetic.json"), rng


def synthetic_tree_file(
    n_features: int, trees: int, depth: int, seed: int = 0
) -> tuple[bytes, np.random.Generator]:
    """`synthetic_trees`' model as the bytes of its XGBoost JSON file."""
    import xgboost

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(5_000, n_features))
    signal = X[:, 0] * 2 - X[:, 1] + X[:, 2] * X[:, 3] + np.sin(X[:, 4:].sum(axis=1))
    params = {"objective": "binary:logistic", "max_depth": depth, "seed": seed, "nthread": 0}
    booster = xgboost.train(params, xgboost.DMatrix(X, label=signal > 0), trees)
    return bytes(booster.save_raw("json")), rng


def gaussian_frame(rng: np.random.Generator, rows: int, n_features: int) -> pd.DataFrame:
    return pd.DataFrame(
        rng.normal(size=(rows, n_features)), columns=[f"f{i}" for i in range(n_features)]
    )


def large_trees(rows: int, repeat: int = 3) -> list[Record]:
    """The issue's tree workload: 500 trees of depth 8 on 50 features, on CPU and GPU."""
    model, rng = synthetic_trees(50, 500, 8)
    data = make_dataset(gaussian_frame(rng, rows, 50))
    workload = f"XGBoost 500 trees, depth 8, 50 features, {rows:,} rows"
    records = _compare(workload, model, data, repeat)
    if device() == "cuda":
        records += _compare(workload, model, data, repeat, "cuda")
    return records


def _resident() -> tuple[int, int]:
    """(resident, peak resident) bytes of this process (Linux)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    resident, peak = (int(status[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM"))
    return resident, peak


def _stream(rows: int, n_features: int, trees: int, depth: int, peer: bool) -> dict[str, Any]:
    """In a fresh process: seconds and peak memory over the start of one explanation of
    `rows` rows, by tree-shap or (`peer`) by one call of XGBoost's own contributions."""
    import xgboost

    model, rng = synthetic_trees(n_features, trees, depth)
    data = make_dataset(gaussian_frame(rng, rows, n_features))
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak at the current size
    before, _ = _resident()
    start = time.perf_counter()
    if peer:
        matrix = xgboost.DMatrix(data.values, feature_names=model.native.feature_names)
        values = model.native.predict(matrix, pred_contribs=True)[:, :-1]
    else:
        values = TreeShap().explain(model, data).values
    seconds = time.perf_counter() - start
    _, peak = _resident()
    return {"seconds": seconds, "extra": peak - before, "output": values.nbytes}


def tree_scale(
    rows: int = 1_000_000, n_features: int = 50, trees: int = 20, depth: int = 6
) -> list[Record]:
    """tree-shap over `rows` rows streams in chunks: its peak memory beyond the data it is
    given, next to the size of the data and of the result (rows x features floats, which
    cannot be smaller); XGBoost's contributions in one call, as a user would write it."""
    runs = {}
    for peer in (False, True):  # each in a fresh process, whose memory is all its own
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            runs[peer] = pool.submit(_stream, rows, n_features, trees, depth, peer).result()
    data_mb = rows * n_features * 8 / MB
    ours, native = runs[False], runs[True]
    return [
        Record(
            f"tree-shap scale: {rows:,} rows x {n_features} features ({data_mb:,.0f} MB "
            f"float64), {trees} trees, depth {depth}",
            "tree-shap",
            "xgboost pred_contribs, one call",
            ours["seconds"],
            native["seconds"],
            None,
            None,
            "cpu",
            note=f"peak memory over the start: whybox {ours['extra'] / MB:,.0f} MB, of which "
            f"the result {ours['output'] / MB:,.0f} MB; XGBoost {native['extra'] / MB:,.0f} MB "
            f"(result {native['output'] / MB:,.0f} MB, float32)",
        )
    ]
