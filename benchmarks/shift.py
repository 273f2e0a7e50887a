"""Distribution shift: whybox's shift report and row typicality against what a user would
script by hand, on a million-row table.

The tables are synthetic and seeded: 40 numeric features (normal, correlated, log-normal,
uniform, Poisson counts; two with 2 % missing values) and 10 categorical ones of 3 to 6
text categories. The new table has three planted shifts, sized from the number of rows so
that they are neither invisible nor obvious at any size: `num10` (normal) moved by 10
`scale` SDs (its expected Kolmogorov-Smirnov statistic about 4 `scale`, where Holm's
threshold is about 2 `scale`), `num17`'s log spread (log-normal) widened by 12 `scale`
(about 3 `scale`) and 2.7 `scale` of `cat2`'s rows moved from its first category to its
second (chi-squared about 49 on 4 degrees of freedom, threshold about 18), with `scale` =
sqrt(1/n + 1/m). Numeric columns are float32 and categories text, written as Parquet (a
float64 million-row table is over the 200 MB upload limit, `WHYBOX_MAX_UPLOAD_MB`), so
reading the files is part of each measured pipeline.

1. Shift: `load_data` + `load_reference` + `shift_report` against pandas.read_parquet +
   scipy.stats.ks_2samp per numeric feature and chi2_contingency per categorical one with
   Holm's correction written out, as a user would script it. Both flag features; the table
   says whether they agree, and the largest difference of their raw p-values.
2. Typicality: `Typicality(reference)` then `.score(rows)` against scikit-learn's
   IsolationForest (fitted on the whole reference, defaults) and NearestNeighbors (the same
   k and index size as whybox, on standardised, one-hot coded rows). 1 % of the scored rows
   have one numeric feature planted 6 SDs out; each method's share of them among its 1 %
   least typical rows is in the note.

Each side runs in a fresh process (`python -m benchmarks.shift SIDE ...`), so its peak
resident set (`ru_maxrss`, the kernel's high-water mark of the whole process: interpreter,
libraries, file bytes, tables, results) is its own; times are taken inside it, without the
start of Python. `repeat` runs of each side take turns; the best time and the largest peak
are kept. Evidently's data drift report is the third peer where it is installed.
`python -m benchmarks --only shift`; timings never gate a test.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # each side's process imports no more than its pipeline needs (no torch)
    from benchmarks.common import Record

N_NUMERIC = 40
N_CATEGORICAL = 10
ALPHA = 0.05
MISSING = {"num05": 0.02, "num06": 0.02}
PLANTED = ("num10", "num17", "cat2")
OUTLIER_SHARE = 0.01
NEIGHBOURS = 10
GIB = 2**30
TARGET_GIB = 4.0
EXACT_ROWS = 10_000
EXACT = (
    " (scipy's ks_2samp defaults to the exact distribution up to 10,000 rows a side, "
    "whybox takes the asymptotic one from 100)"
)
EVIDENTLY_SKIPPED = (
    "Evidently skipped: not installed. evidently 0.7.23 (the latest pip resolves) pins "
    "plotly<6 and would replace this environment's plotly {plotly} with 5.24.1, so it is "
    "kept out of whybox's environment"
)


# --- the tables ---------------------------------------------------------------------------


def _categories(j: int) -> tuple[list[str], np.ndarray]:
    """Categorical feature j's names (3 to 6 of them) and their frequencies."""
    k = 3 + j % 4
    frequencies = np.random.default_rng(100 + j).dirichlet(np.full(k, 4.0))
    frequencies = np.sort(frequencies)[::-1]  # the first category the most frequent
    return [f"{chr(65 + j)}{i}" for i in range(k)], frequencies


def columns(rows: int, seed: int, shift_scale: float = 0.0) -> dict[str, np.ndarray]:
    """A table's columns: numeric ones float32 (NaN where missing), categorical ones as
    category indexes (int8); with `shift_scale`, the planted shifts in that many units."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for j in range(N_NUMERIC):
        kind = j % 5
        if kind == 0:  # normal at a feature's own location and scale
            column = rng.standard_normal(rows, dtype=np.float32) * (1 + j / 10) + j
        elif kind == 1:  # correlated with the one before
            base = (data[f"num{j - 1:02d}"] - (j - 1)) / (1 + (j - 1) / 10)
            column = 0.6 * base + 0.8 * rng.standard_normal(rows, dtype=np.float32)
        elif kind == 2:  # skewed: log-normal
            column = np.exp(0.5 * rng.standard_normal(rows, dtype=np.float32)) * 100
        elif kind == 3:  # uniform
            column = rng.random(rows, dtype=np.float32) * 10 - 5
        else:  # counts: many ties
            column = rng.poisson(3.0, rows).astype(np.float32)
        data[f"num{j:02d}"] = column.astype(np.float32)
    if shift_scale:
        data["num10"] += np.float32(10 * shift_scale * 2.0)  # normal, SD 2: 10 scale SDs
        logs = np.log(data["num17"] / 100)  # log-normal: its log spread widened
        data["num17"] = np.exp(logs * np.float32(1 + 12 * shift_scale)) * 100
    for name, share in MISSING.items():
        data[name][rng.random(rows) < share] = np.nan
    for j in range(N_CATEGORICAL):
        _, frequencies = _categories(j)
        if shift_scale and j == 2:
            moved = 2.7 * shift_scale
            frequencies = frequencies + np.array([-moved, moved] + [0.0] * (len(frequencies) - 2))
        codes = np.searchsorted(np.cumsum(frequencies), rng.random(rows), side="right")
        data[f"cat{j}"] = np.minimum(codes, len(frequencies) - 1).astype(np.int8)
    return data


def write_parquet(path: Path, data: dict[str, np.ndarray]) -> None:
    """Numeric columns as float32, categorical ones as plain text (as most tools write
    them: no dictionary type for pandas to restore as a Categorical)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for name, column in data.items():
        if name.startswith("cat"):
            labels, _ = _categories(int(name[3:]))
            arrays[name] = pa.array(labels, pa.string()).take(pa.array(column))
        else:
            arrays[name] = pa.array(column, from_pandas=True)  # NaN as null
    pq.write_table(pa.table(arrays), path)


def plant_outliers(data: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """`OUTLIER_SHARE` of the rows get one numeric feature 6 of its SDs from its mean;
    their indexes."""
    rng = np.random.default_rng(seed)
    rows = len(data["num00"])
    chosen = np.sort(rng.choice(rows, max(1, int(rows * OUTLIER_SHARE)), replace=False))
    names = [f"num{j:02d}" for j in range(N_NUMERIC)]
    for row in chosen:
        column = data[names[rng.integers(N_NUMERIC)]]
        centre, spread = np.nanmean(column), np.nanstd(column)
        column[row] = centre + rng.choice([-6.0, 6.0]) * spread
    return chosen


def shift_scale(reference_rows: int, rows: int) -> float:
    return float(np.sqrt(1 / reference_rows + 1 / rows))


# --- one side, in its own process ---------------------------------------------------------


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def holm_by_hand(p_values: dict[str, float], alpha: float = ALPHA) -> set[str]:
    """Holm's step-down procedure as a user writes it: sort, compare the i-th smallest
    with alpha / (m - i), stop at the first that is not below."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    flagged = set()
    for i, (name, p) in enumerate(ordered):
        if p >= alpha / (len(ordered) - i):
            break
        flagged.add(name)
    return flagged


def _whybox_shift(folder: Path) -> dict[str, Any]:
    import lightgbm  # noqa: F401  imported here so that its import is in the baseline

    from whybox.model_zoo import load_data
    from whybox.model_zoo.data import load_reference
    from whybox.trust.shift import shift_report

    baseline = _resident_bytes()
    started = time.perf_counter()
    data = load_data(folder / "data.parquet")
    reference = load_reference(folder / "reference.parquet", data)
    loaded = time.perf_counter()
    report = shift_report(reference, data, alpha=ALPHA)
    reported = time.perf_counter()
    peak = _peak_bytes()  # the pipeline's peak: load both tables, the default report
    started_tests = time.perf_counter()
    tests = shift_report(reference, data, alpha=ALPHA, classifier=False)
    tests_s = time.perf_counter() - started_tests
    test = report.classifier
    return {
        "load": loaded - started,
        "report": reported - loaded,
        "tests": tests_s,
        "peak": peak,
        "baseline": baseline,
        "flagged": sorted(f.feature for f in tests.features if f.shifted),
        "flagged_with_classifier": sorted(f.feature for f in report.features if f.shifted),
        "p_values": {f.feature: f.p_value for f in tests.features},
        "classifier": {
            "auc": test.auc,
            "shifted": test.shifted,
            "top": list(test.importance)[:3],
        },
    }


def _scipy_shift(folder: Path) -> dict[str, Any]:
    import pandas as pd
    from scipy import stats

    baseline = _resident_bytes()
    started = time.perf_counter()
    reference = pd.read_parquet(folder / "reference.parquet")
    data = pd.read_parquet(folder / "data.parquet")
    loaded = time.perf_counter()
    p_values = {}
    for name in data.columns:
        if pd.api.types.is_numeric_dtype(data[name]):
            result = stats.ks_2samp(reference[name].dropna(), data[name].dropna())
        else:
            counts = pd.concat(
                [reference[name].value_counts(), data[name].value_counts()], axis=1
            ).fillna(0)
            result = stats.chi2_contingency(counts.T.to_numpy())
        p_values[name] = float(result.pvalue)
    flagged = holm_by_hand(p_values)
    done = time.perf_counter()
    return {
        "load": loaded - started,
        "tests": done - loaded,
        "peak": _peak_bytes(),
        "baseline": baseline,
        "flagged": sorted(flagged),
        "p_values": p_values,
    }


def _whybox_typicality(folder: Path) -> dict[str, Any]:
    from whybox.model_zoo import load_data
    from whybox.model_zoo.data import load_reference
    from whybox.trust.typicality import Typicality

    baseline = _resident_bytes()
    started = time.perf_counter()
    rows = load_data(folder / "rows.parquet")
    reference = load_reference(folder / "reference.parquet", rows)
    loaded = time.perf_counter()
    typicality = Typicality(reference, neighbours=NEIGHBOURS)
    fitted = time.perf_counter()
    scored = typicality.score(rows)
    done = time.perf_counter()
    scores = np.array([row.score for row in scored])
    return {
        "load": loaded - started,
        "fit": fitted - loaded,
        "score": done - fitted,
        "peak": _peak_bytes(),
        "baseline": baseline,
        "index_rows": len(typicality.index),
        "unusual": _least_typical(-scores),
        "scores": scores.tolist(),
    }


def _least_typical(scores: np.ndarray) -> list[int]:
    """The rows among the `OUTLIER_SHARE` lowest scores (lower: less typical)."""
    count = max(1, int(len(scores) * OUTLIER_SHARE))
    return np.argsort(scores, kind="stable")[:count].tolist()


def _encoded(reference, rows) -> tuple[np.ndarray, np.ndarray]:
    """The rows as a user codes them for scikit-learn: numeric columns' missing values at
    the reference median, standardised on the reference; categories one-hot."""
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c])]
    categorical = [c for c in rows.columns if c not in numeric]
    medians = reference[numeric].median()
    scaler = StandardScaler().fit(reference[numeric].fillna(medians))
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    encoder.fit(reference[categorical])

    def encode(table):
        numbers = scaler.transform(table[numeric].fillna(medians)).astype(np.float32)
        return np.hstack([numbers, encoder.transform(table[categorical])])

    return encode(reference), encode(rows)


def _isolation_forest(folder: Path) -> dict[str, Any]:
    import pandas as pd
    from sklearn.ensemble import IsolationForest

    baseline = _resident_bytes()
    started = time.perf_counter()
    reference = pd.read_parquet(folder / "reference.parquet")
    rows = pd.read_parquet(folder / "rows.parquet")
    reference_x, rows_x = _encoded(reference, rows)
    loaded = time.perf_counter()
    forest = IsolationForest(random_state=0, n_jobs=-1).fit(reference_x)
    fitted = time.perf_counter()
    scores = forest.score_samples(rows_x)
    done = time.perf_counter()
    return {
        "load": loaded - started,
        "fit": fitted - loaded,
        "score": done - fitted,
        "peak": _peak_bytes(),
        "baseline": baseline,
        "unusual": _least_typical(scores),
    }


def _nearest_neighbours(folder: Path, index_rows: int) -> dict[str, Any]:
    import pandas as pd
    from sklearn.neighbors import NearestNeighbors

    baseline = _resident_bytes()
    started = time.perf_counter()
    reference = pd.read_parquet(folder / "reference.parquet")
    rows = pd.read_parquet(folder / "rows.parquet")
    reference_x, rows_x = _encoded(reference, rows)
    loaded = time.perf_counter()
    sample = np.random.default_rng(0).choice(len(reference_x), index_rows, replace=False)
    search = NearestNeighbors(n_neighbors=NEIGHBOURS, n_jobs=-1).fit(reference_x[sample])
    fitted = time.perf_counter()
    distances, _ = search.kneighbors(rows_x)
    mean = distances.mean(axis=1)
    done = time.perf_counter()
    return {
        "load": loaded - started,
        "fit": fitted - loaded,
        "score": done - fitted,
        "peak": _peak_bytes(),
        "baseline": baseline,
        "unusual": _least_typical(-mean),
        "scores": mean.tolist(),
    }


SIDES = {
    "whybox-shift": _whybox_shift,
    "scipy-shift": _scipy_shift,
    "whybox-typicality": _whybox_typicality,
    "isolation-forest": _isolation_forest,
    "nearest-neighbours": _nearest_neighbours,
}


def _run(side: str, folder: Path, *args: Any) -> dict[str, Any]:
    """One side in a fresh process: its measures."""
    out = folder / f"{side}.json"
    command = [sys.executable, "-m", "benchmarks.shift", side, str(folder), str(out)]
    done = subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    if done.returncode:
        lines = done.stderr.strip().splitlines() or ["no message"]
        raise RuntimeError(f"the {side} run failed: {lines[-1]}")
    return json.loads(out.read_text())


def _best(runs: list[dict[str, Any]], phases: tuple[str, ...]) -> dict[str, Any]:
    """The last run's results with each phase's best time and the largest peak."""
    best = dict(runs[-1])
    for phase in phases:
        best[phase] = min(run[phase] for run in runs)
    best["peak"] = max(run["peak"] for run in runs)
    return best


# --- the suite ----------------------------------------------------------------------------


def shift_suite(
    reference_rows: int = 1_000_000,
    rows: int = 1_000_000,
    typicality_rows: int = 100_000,
    repeat: int = 1,
) -> list[Record]:
    """Both workloads on tables of these sizes, each side `repeat` times in fresh processes."""
    scale = shift_scale(reference_rows, rows)
    with tempfile.TemporaryDirectory(prefix="whybox-shift-") as tmp:
        folder = Path(tmp)
        write_parquet(folder / "reference.parquet", columns(reference_rows, seed=1))
        write_parquet(folder / "data.parquet", columns(rows, seed=2, shift_scale=scale))
        scored = columns(typicality_rows, seed=3)
        planted = plant_outliers(scored, seed=4)
        write_parquet(folder / "rows.parquet", scored)
        sizes = {
            name: (folder / f"{name}.parquet").stat().st_size / 2**20
            for name in ("reference", "data")
        }
        shift_runs: dict[str, list[dict[str, Any]]] = {"whybox-shift": [], "scipy-shift": []}
        for _ in range(repeat):
            for side, runs in shift_runs.items():
                runs.append(_run(side, folder))
        typicality_runs: dict[str, list[dict[str, Any]]] = {
            "whybox-typicality": [],
            "isolation-forest": [],
            "nearest-neighbours": [],
        }
        for _ in range(repeat):
            for side, runs in typicality_runs.items():  # whybox first: its index size
                args = ()
                if side == "nearest-neighbours":
                    args = (typicality_runs["whybox-typicality"][-1]["index_rows"],)
                runs.append(_run(side, folder, *args))
    ours = _best(shift_runs["whybox-shift"], ("load", "report", "tests"))
    peer = _best(shift_runs["scipy-shift"], ("load", "tests"))
    records = _shift_records(ours, peer, reference_rows, rows, scale, sizes)
    records += _typicality_records(
        {side: _best(runs, ("load", "fit", "score")) for side, runs in typicality_runs.items()},
        set(planted.tolist()),
        reference_rows,
        typicality_rows,
    )
    return records


def _decisions(ours: list[str], peer: list[str]) -> str:
    if ours == peer:
        return f"same decisions: both flag {', '.join(ours) or 'nothing'}"
    return (
        f"DIFFERENT decisions: whybox flags {', '.join(ours) or 'nothing'}, the peer "
        f"{', '.join(peer) or 'nothing'}"
    )


def _shift_records(
    ours: dict[str, Any],
    peer: dict[str, Any],
    reference_rows: int,
    rows: int,
    scale: float,
    sizes: dict[str, float],
) -> list[Record]:
    from benchmarks.common import Record

    workload = f"shift, {reference_rows:,} reference vs {rows:,} new rows x 50 features"
    hand = "scipy ks_2samp + chi2_contingency + Holm, by hand"
    p_error = max(abs(ours["p_values"][f] - p) for f, p in peer["p_values"].items())
    decisions = _decisions(ours["flagged"], peer["flagged"])
    test = ours["classifier"]
    planted = f"planted: {', '.join(PLANTED)} (scale {scale:.2g})"
    peaks = (
        f"peak RSS whybox {ours['peak'] / GIB:.2f} GiB (target < {TARGET_GIB:.0f}; "
        f"{ours['baseline'] / GIB:.2f} after imports), the peer {peer['peak'] / GIB:.2f} GiB"
    )
    print(f"shift: {decisions}; {planted}")
    print(f"shift: {peaks}")
    evidently = _evidently_status()
    print(f"shift: {evidently}")
    return [
        Record(
            f"{workload}: read both Parquet files ({sizes['reference']:.0f} + "
            f"{sizes['data']:.0f} MB)",
            "load_data + load_reference",
            "pandas.read_parquet x2",
            ours["load"],
            peer["load"],
            None,
            None,
            "cpu",
            note="whybox also codes categories and checks every value",
        ),
        Record(
            f"{workload}: per-feature tests",
            "shift_report(classifier=False)",
            hand,
            ours["tests"],
            peer["tests"],
            p_error,
            0.0,
            "cpu",
            note=f"{decisions}; {planted}; error: max abs difference of raw p-values"
            + (EXACT if max(reference_rows, rows) <= EXACT_ROWS else ""),
        ),
        Record(
            f"{workload}: per-feature tests + classifier test",
            "shift_report",
            hand,
            ours["report"],
            peer["tests"],
            None,
            None,
            "cpu",
            note=f"classifier AUC {test['auc']:.4f}, "
            f"{'flags shift' if test['shifted'] else 'no shift flagged'}, top features "
            f"{', '.join(test['top'])}; with it whybox flags "
            f"{', '.join(ours['flagged_with_classifier']) or 'nothing'} (Holm over 51 tests)",
        ),
        Record(
            f"{workload}: read + report, end to end",
            "load_data + load_reference + shift_report",
            f"read_parquet + {hand}",
            ours["load"] + ours["report"],
            peer["load"] + peer["tests"],
            None,
            None,
            "cpu",
            note=peaks,
        ),
        Record(
            f"{workload}: read + report, end to end",
            "load_data + load_reference + shift_report",
            "Evidently DataDriftPreset",
            ours["load"] + ours["report"],
            None,
            None,
            None,
            "cpu",
            note=evidently,
        ),
    ]


def _evidently_status() -> str:
    try:
        version = metadata.version("evidently")
    except metadata.PackageNotFoundError:
        return EVIDENTLY_SKIPPED.format(plotly=metadata.version("plotly"))
    return f"Evidently skipped: evidently {version} is installed but this suite does not run it"


def _typicality_records(
    sides: dict[str, dict[str, Any]], planted: set[int], reference_rows: int, rows: int
) -> list[Record]:
    from benchmarks.common import Record

    ours = sides["whybox-typicality"]
    workload = f"typicality, {rows:,} rows vs {reference_rows:,} reference rows x 50 features"
    found = {
        side: len(planted & set(measured["unusual"])) / len(planted)
        for side, measured in sides.items()
    }
    index = ours["index_rows"]
    peers = {
        "isolation-forest": "sklearn IsolationForest, defaults, fit on every reference row",
        "nearest-neighbours": f"sklearn NearestNeighbors, k={NEIGHBOURS}, {index:,} sampled "
        "reference rows",
    }
    records = []
    for side, peer_name in peers.items():
        peer = sides[side]
        note = (
            f"fit {ours['fit']:.2f} vs {peer['fit']:.2f} s, score {ours['score']:.2f} vs "
            f"{peer['score']:.2f} s; planted outliers among the 1 % least typical: whybox "
            f"{found['whybox-typicality']:.0%}, the peer {found[side]:.0%}"
        )
        if side == "nearest-neighbours":
            ranks = _spearman(ours["scores"], peer["scores"])
            note += f"; Spearman correlation of whybox's score and the mean distance {ranks:.3f}"
        records += [
            Record(
                f"{workload}: fit + score",
                f"Typicality (k={NEIGHBOURS}, {index:,} indexed rows)",
                peer_name,
                ours["fit"] + ours["score"],
                peer["fit"] + peer["score"],
                None,
                None,
                "cpu",
                note=note,
            ),
            Record(
                f"{workload}: read + fit + score, end to end",
                "load_data + load_reference + Typicality",
                f"read_parquet + scale + one-hot + {peer_name.split(',')[0]}",
                ours["load"] + ours["fit"] + ours["score"],
                peer["load"] + peer["fit"] + peer["score"],
                None,
                None,
                "cpu",
                note=f"read {ours['load']:.1f} vs {peer['load']:.1f} s; peak RSS whybox "
                f"{ours['peak'] / GIB:.2f} GiB, the peer {peer['peak'] / GIB:.2f} GiB",
            ),
        ]
    return records


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy import stats

    return float(stats.spearmanr(a, b).statistic)


if __name__ == "__main__":
    side, folder, out, *rest = sys.argv[1:]
    measured = SIDES[side](Path(folder), *map(int, rest))
    Path(out).write_text(json.dumps(measured))
