"""Version diffs: whybox's `diff_models` on two versions of a model, stage by stage, against
what a user would script by hand for the stages that have a hand-written equivalent.

No library compares two versions of a model, so there is no peer for the whole diff. Its
stages are timed apart (the gaps between `diff_models`' progress calls), and three of them
against the calls a user would write on the same rows:

1. Predicting (with the decisions: flips, the favourable class lost and gained, the
   spread of the change, the rows that changed most) against the model's own prediction
   for both versions (`Booster.predict` on a DMatrix; the network's forward pass and a
   sigmoid) and a count of the flips.
2. Measuring performance (accuracy and AUC of each version and their change, with 95 %
   intervals from 200 paired bootstrap resamples) against the same 200 resamples written
   as a loop: numpy's accuracy and scikit-learn's `roc_auc_score`, drawn from the same
   seeded generator, so the intervals must agree. A second peer takes each resample as
   how many times it draws every row and counts the AUC over rows sorted once: what the
   stage could take.
3. Explaining both models (the reasons) against the SHAP explainer that matches the method
   `diff_models` chose, on the same rows, background rows and output: `shap.TreeExplainer`
   for tree-shap (path-dependent, as XGBoost's own contributions); `shap.ExactExplainer`
   (an `Independent` masker over whybox's background sample) for exact-shapley;
   `shap.PermutationExplainer` with `max_evals` set to permutation-shap's coalitions per
   row for permutation-shap (the reasons have a budget of model evaluations, so a network
   on 12 features gets permutation-shap and one on 8 exact-shapley). The error is the
   largest difference of a feature's mean |attribution| (what the diff reports), against
   exact values where the method samples (exact-shapley with no budget, outside the
   timing), else against SHAP's.

The cohort search (a regression tree on the change in loss, sign tests on held-out rows)
has no hand-written equivalent to time; its row says what it found, and what the reported
cohorts' own paired bootstraps take when timed alone.

The table is synthetic and seeded: 12 numeric columns of a credit application (ages and
counts are whole numbers, so rows share values as in real data). Version A is trained on
honest labels, version B on labels flipped for the planted cohort (applicants under 30
who use more than 70 % of their credit), from another seed; both are compared on fresh
rows with honest labels. Peak memory is the process's high-water mark above its size at
each stage's start (Linux: reset through /proc/self/clear_refs, read as VmHWM); memory an
earlier stage freed but the allocator kept is reused without showing.
`python -m benchmarks --only versions`; timings never gate a test.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.common import Record
from whybox.model_zoo import Dataset, Model, load_data, load_model
from whybox.trust.versions import COMPARED_ROWS, EXPLAINED_ROWS, VersionDiff, diff_models

CLASSES = ["bad", "good"]
FAVOURABLE = "good"
SEED = 0
BOOTSTRAP = 200
BACKGROUND = 100
"""The explainers' default number of background rows, for a method that names none."""
MB = 2**20
STAGES = {
    "predicting": "predicting",
    "measuring performance": "measuring performance",
    "looking for cohorts where B is worse": "cohorts where B is worse",
    "explaining both models": "explaining both models",
}
"""`diff_models`' progress stages, and how the table names them."""


# --- the table and the two versions -----------------------------------------------------


def applicants(rows: int, seed: int) -> pd.DataFrame:
    """Credit applications and their true Status (good or bad), seeded."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 76, rows),
            "income": rng.gamma(4.0, 15.0, rows).round(1),
            "debt_ratio": rng.beta(2.0, 5.0, rows).round(3),
            "utilisation": rng.random(rows).round(3),
            "accounts": rng.poisson(4.0, rows),
            "late_payments": rng.poisson(0.5, rows),
            "years_employed": rng.integers(0, 31, rows),
            "savings": np.exp(rng.normal(8.0, 1.2, rows)).round(0),
            "loan": np.exp(rng.normal(9.0, 0.8, rows)).round(0),
            "term": rng.choice([12, 24, 36, 60], rows),
            "history_years": rng.integers(0, 41, rows),
            "inquiries": rng.poisson(1.0, rows),
        }
    )
    score = (
        (frame.income - 60) / 25
        - 3 * (frame.debt_ratio - 0.3)
        - 1.5 * (frame.utilisation - 0.5)
        - 0.6 * frame.late_payments
        + (frame.age - 45) / 30
        + np.log(frame.savings / frame.loan) / 2
        + frame.history_years / 40
        - 0.2 * frame.inquiries
        + 0.4 * (frame.term <= 24) * (frame.debt_ratio < 0.3)
    )
    good = score + rng.logistic(0.0, 0.5, rows) > 0
    frame["Status"] = np.where(good, "good", "bad")
    return frame


def in_cohort(frame: pd.DataFrame) -> np.ndarray:
    """The planted cohort B learned wrong: applicants under 30 who use over 70 % of their
    credit."""
    return ((frame.age < 30) & (frame.utilisation > 0.7)).to_numpy()


def with_regression(frame: pd.DataFrame) -> pd.DataFrame:
    """The training rows with the planted cohort's labels flipped."""
    wrong = frame.copy()
    cohort = in_cohort(wrong)
    wrong.loc[cohort, "Status"] = np.where(wrong.Status[cohort] == "good", "bad", "good")
    return wrong


def train_xgboost(frame: pd.DataFrame, seed: int, trees: int, depth: int) -> Model:
    """An XGBoost classifier saved as JSON (its class names in an attribute) and loaded as
    whybox loads a model file."""
    import xgboost

    labels = (frame.Status == CLASSES[1]).to_numpy(int)
    booster = (
        xgboost.XGBClassifier(
            n_estimators=trees,
            max_depth=depth,
            learning_rate=0.05,
            subsample=0.8,
            colsample_bytree=0.8,
            random_state=seed,
            tree_method="hist",
        )
        .fit(frame.drop(columns="Status"), labels)
        .get_booster()
    )
    booster.set_attr(whybox_class_names=json.dumps(CLASSES))
    raw = bytes(booster.save_raw("json"))
    return load_model(raw, name=f"xgboost-{seed}.json", isolated=False)


def train_mlp(frame: pd.DataFrame, seed: int, steps: int = 300) -> Model:
    """whybox's MLP (2 x 32 ReLU, standardising its inputs) trained as the demos train it
    (full-batch Adam), from a start drawn from its own generator; saved as safetensors and
    loaded as whybox loads a model file."""
    from whybox.model_zoo.architectures import MLP
    from whybox.model_zoo.safetensors_models import save_safetensors

    features = frame.drop(columns="Status")
    X = torch.tensor(features.to_numpy(), dtype=torch.float32)
    y = torch.tensor((frame.Status == CLASSES[1]).to_numpy(), dtype=torch.float32)
    config = {"n_features": X.shape[1], "n_outputs": 1, "hidden": [32, 32]}
    module = MLP(**config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.layers:
            if isinstance(layer, torch.nn.Linear):  # torch's default start, seeded here
                bound = layer.in_features**-0.5
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
        module.input_mean.copy_(X.mean(0))
        module.input_std.copy_(X.std(0).clamp_min(1e-6))
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(module(X)[:, 0], y)
        loss.backward()
        optimizer.step()
    raw = save_safetensors(
        module.eval(),
        "mlp",
        config,
        "logit",
        feature_names=list(features.columns),
        class_names=CLASSES,
    )
    return load_model(raw, name=f"mlp-{seed}.safetensors", isolated=False)


def read(frame: pd.DataFrame, model: Model) -> Dataset:
    """The rows as whybox reads a data file for `model` (Parquet, Status the label)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return load_data(buffer.getvalue(), model, label="Status", name="rows.parquet")


# --- timing -------------------------------------------------------------------------------


def _peak_reset() -> int:
    """Restart this process's high-water mark of resident memory at its current size; that
    size in bytes (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class _Stages:
    """`diff_models`' progress callback: each stage's seconds and its peak memory above the
    resident size at its start, and the highest resident size of any stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peaks: dict[str, int] = {}
        self.highest = 0
        self._stage: str | None = None
        self._start = 0.0
        self._resident = 0

    def __call__(self, stage: str) -> None:
        self._close()
        self._stage, self._resident = stage, _peak_reset()
        self._start = time.perf_counter()

    def _close(self) -> None:
        high = _status("VmHWM")
        self.highest = max(self.highest, high)
        if self._stage is not None:
            self.seconds[self._stage] = time.perf_counter() - self._start
            self.peaks[self._stage] = max(0, high - self._resident)

    def finish(self) -> None:
        self._close()
        self._stage = None


def _timed_diff(
    a: Model, data_a: Dataset, b: Model, data_b: Dataset
) -> tuple[VersionDiff, dict[str, float], dict[str, int], int]:
    """One `diff_models`: its result, seconds and peak memory per stage (and "total"), and
    the peak of the whole diff above its start."""
    stages = _Stages()
    resident = _peak_reset()
    start = time.perf_counter()
    diff = diff_models(a, data_a, b, data_b, favourable=FAVOURABLE, seed=SEED, progress=stages)
    stages.finish()
    total = time.perf_counter() - start
    peak = max(0, stages.highest - resident)
    return diff, {**stages.seconds, "total": total}, stages.peaks, peak


def _timed(run: Callable[[], Any]) -> tuple[float, int, Any]:
    """Seconds, peak memory above the start and result of one call."""
    resident = _peak_reset()
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, max(0, _status("VmHWM") - resident), result


# --- the hand-written equivalents ---------------------------------------------------------


def explained_rows(diff: VersionDiff, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows `diff_models` explained (a seeded sample and the rows that changed most) and
    which of them are in the sample, drawn as it draws them."""
    rng = np.random.default_rng(diff.seed)
    sampled = np.sort(rng.choice(rows, min(EXPLAINED_ROWS, rows), replace=False))
    compared = [entry["row"] for entry in diff.decisions["largest"][:COMPARED_ROWS]]
    explained = np.array(sorted(set(sampled.tolist()) | set(compared)))
    return explained, np.isin(explained, sampled)


def bootstrap_by_hand(
    labels: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, seed: int
) -> dict[str, dict[str, list[float]]]:
    """Accuracy and AUC of A and B and B minus A, with 95 % intervals from `BOOTSTRAP`
    paired resamples, as a user writes it: one loop, numpy and scikit-learn."""
    from sklearn.metrics import roc_auc_score

    def measure(pick: np.ndarray) -> tuple[float, ...]:
        truth = labels[pick]
        return tuple(
            value
            for p in (p_a[pick], p_b[pick])
            for value in (((p > 0.5) == truth).mean(), roc_auc_score(truth, p))
        )

    rng = np.random.default_rng(seed)
    everything = measure(np.arange(len(labels)))
    draws = [measure(rng.integers(0, len(labels), len(labels))) for _ in range(BOOTSTRAP)]
    return _summary(everything, np.array(draws))


def bootstrap_by_counts(
    labels: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, seed: int
) -> dict[str, dict[str, list[float]]]:
    """`bootstrap_by_hand`'s resamples (the same draws), each taken as how many times it
    draws every row: the rows are sorted by score once per model, and each resample's AUC
    is then a weighted Mann-Whitney count in one pass (ties count half, as in
    `roc_auc_score`), with no sort and no copy of the rows."""
    n = len(labels)
    prepared = []
    for p in (p_a, p_b):
        order = np.argsort(p, kind="stable")
        ranked = p[order]
        tie_group = np.concatenate([[0], np.cumsum(ranked[1:] != ranked[:-1])])
        correct = ((p > 0.5) == labels).astype(np.float64)
        prepared.append((order, labels[order], tie_group, correct))

    def measure(counts: np.ndarray) -> tuple[float, ...]:
        values: list[float] = []
        for order, truth, tie_group, correct in prepared:
            weights = counts[order]
            positive = np.bincount(tie_group, weights * truth)
            negative = np.bincount(tie_group, weights) - positive
            below = np.cumsum(negative) - negative
            # einsum, not `@`: a multithreaded BLAS dot product of two vectors took 100 times
            # longer on a busy 2-core machine (its threads wait for each other).
            pairs = np.einsum("i,i->", positive, below + negative / 2)
            values += [
                np.einsum("i,i->", counts, correct) / n,
                pairs / (positive.sum() * negative.sum()),
            ]
        return tuple(values)

    rng = np.random.default_rng(seed)
    everything = measure(np.ones(n))
    draws = [
        measure(np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64))
        for _ in range(BOOTSTRAP)
    ]
    return _summary(everything, np.array(draws))


def _summary(everything: tuple[float, ...], draws: np.ndarray) -> dict[str, dict[str, list]]:
    """B minus A on all rows and the 95 % intervals of A, B and B minus A, per metric, from
    measures ordered (A's accuracy, A's AUC, B's accuracy, B's AUC)."""
    result = {}
    for k, metric in enumerate(("accuracy", "auc")):
        a, b = draws[:, k], draws[:, 2 + k]
        result[metric] = {
            "change": [everything[2 + k] - everything[k]],
            **{
                f"{name}_interval": np.percentile(values, [2.5, 97.5]).tolist()
                for name, values in (("a", a), ("b", b), ("change", b - a))
            },
        }
    return result


def _interval_error(diff: VersionDiff, hand: dict[str, dict[str, list[float]]]) -> float:
    """The largest difference between whybox's performance figures and the hand loop's."""
    return max(
        abs(ours - theirs)
        for metric, figures in hand.items()
        for name, values in figures.items()
        for ours, theirs in zip(np.atleast_1d(diff.performance[metric][name]), values, strict=True)
    )


def _mean_magnitudes(values: dict[str, np.ndarray], in_sample: np.ndarray) -> np.ndarray:
    """Each feature's mean |attribution| on the sampled rows, under A and B: (2, features)."""
    return np.stack([np.abs(values[side][in_sample]).mean(axis=0) for side in ("A", "B")])


def _reported_magnitudes(diff: VersionDiff, feature_names: list[str]) -> np.ndarray:
    """The same, as `diff_models` reports it."""
    reported = {f["feature"]: f for f in diff.reasons["features"]}
    return np.array([[reported[name][side] for name in feature_names] for side in ("a", "b")])


def _probabilities_xgboost(model: Model, X: np.ndarray) -> np.ndarray:
    import xgboost

    booster = model.native
    return booster.predict(xgboost.DMatrix(X, feature_names=booster.feature_names))


def _probabilities_torch(model: Model, X: np.ndarray) -> np.ndarray:
    """The network's forward pass and a sigmoid, as a user calls it (its logit module)."""
    with torch.inference_mode():
        logits = model.module(torch.from_numpy(X.astype(np.float32)))
    return torch.sigmoid(logits[:, 0]).double().numpy()


class ShapPeer:
    """SHAP's explainer that matches the method `diff_models` chose for its reasons, on the
    same rows, background rows, output (the margin of the favourable class) and budget."""

    def __init__(self, pair: Pair, reasons: dict[str, Any]) -> None:
        self.pair, self.method = pair, reasons["method"]
        params = reasons["params"]
        self.background = pair.data_a.background(params.get("background", BACKGROUND), SEED)
        n_background, n_features = len(self.background), pair.X.shape[1]
        if self.method == "tree-shap":
            self.name = "shap.TreeExplainer x2"
        elif self.method == "exact-shapley":
            self.name = f"shap.ExactExplainer x2, background {n_background}"
        elif self.method == "permutation-shap":
            from whybox.explainers.sampling import PermutationShap

            chosen = PermutationShap(permutations=params["permutations"])
            # SHAP's max_evals counts coalitions, each evaluated on every background row.
            self.evaluations = chosen._coalitions_per_row(n_features, n_background)
            pairs = self.evaluations // (2 * n_features + 1)  # SHAP walks whole pairs
            self.name = (
                f"shap.PermutationExplainer x2, max_evals={self.evaluations} "
                f"({pairs} pairs of walks), background {n_background}"
            )
        else:
            raise ValueError(f"no SHAP peer for {self.method}")

    def __call__(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Both versions' attributions for rows `X`."""
        import shap

        from benchmarks.tabular import margin_function

        sides = (("A", self.pair.a), ("B", self.pair.b))
        if self.method == "tree-shap":
            values = {}
            for side, model in sides:
                # SHAP hands a booster's contributions to XGBoost on the booster's device.
                model.native.set_param({"device": "cpu"})
                values[side] = shap.TreeExplainer(model.native).shap_values(X)
            return values
        masker = shap.maskers.Independent(self.background, max_samples=len(self.background))
        if self.method == "exact-shapley":
            return {
                side: shap.ExactExplainer(margin_function(model), masker)(X, silent=True).values
                for side, model in sides
            }
        return {
            side: shap.PermutationExplainer(margin_function(model), masker, seed=SEED)(
                X, max_evals=self.evaluations, silent=True
            ).values
            for side, model in sides
        }

    def exact(self, rows: np.ndarray) -> dict[str, np.ndarray] | None:
        """Exact Shapley values of `rows` under both versions where the method samples
        (exact-shapley with no budget, which agrees with shap.ExactExplainer to 1e-10 here);
        None where the method is exact itself."""
        if self.method in ("tree-shap", "exact-shapley"):
            return None
        from whybox.explainers.shapley import ExactShapley

        exact = ExactShapley(
            background=len(self.background), seed=SEED, output_space="margin", max_cost=2**34
        )
        sides = (("A", self.pair.a, self.pair.data_a), ("B", self.pair.b, self.pair.data_b))
        return {
            side: exact.explain(model, data, rows, target=FAVOURABLE).values
            for side, model, data in sides
        }


# --- a pair of versions -------------------------------------------------------------------


class Pair:
    """Two versions of a model on the same rows, and how a user calls them by hand."""

    def __init__(
        self,
        workload: str,
        a: Model,
        b: Model,
        frame: pd.DataFrame,
        predict: Callable[[Model, np.ndarray], np.ndarray],
        predicted_by: str,
    ) -> None:
        self.workload, self.a, self.b, self.frame = workload, a, b, frame
        self.data_a, self.data_b = read(frame, a), read(frame, b)
        self.X = self.data_a.values
        self.labels = (self.data_a.labels == CLASSES[1]).to_numpy(int)  # 1: good
        self.predict, self.predicted_by = predict, predicted_by

    def predict_by_hand(self) -> int:
        """Both versions' probabilities, and the rows whose class flips."""
        p_a, p_b = self.predict(self.a, self.X), self.predict(self.b, self.X)
        return int(((p_a > 0.5) != (p_b > 0.5)).sum())

    def warm_up(self) -> None:
        """Every path of the diff and the hand-written stages once on a few rows: imports,
        thread pools (SHAP's peer is warmed up once the method is known)."""
        few = np.arange(min(2_000, len(self.X)))
        subset = self.data_a.subset(few), self.data_b.subset(few)
        diff_models(self.a, subset[0], self.b, subset[1], favourable=FAVOURABLE, explain=False)
        tiny = self.data_a.subset(few[:30]), self.data_b.subset(few[:30])
        diff_models(self.a, tiny[0], self.b, tiny[1], favourable=FAVOURABLE)
        p = self.predict(self.a, self.X[few[:200]])
        bootstrap_by_hand(self.labels[few[:200]], p, p, SEED)
        bootstrap_by_counts(self.labels[few[:200]], p, p, SEED)


def _compare(pair: Pair, repeat: int) -> list[Record]:
    """`diff_models` on the pair against the hand-written stages, `repeat` rounds after a
    warm-up, taking turns; each stage's best time and largest peak memory."""
    pair.warm_up()
    p_a, p_b = pair.predict(pair.a, pair.X), pair.predict(pair.b, pair.X)
    peers: dict[str, Callable[[], Any]] = {
        "predicting": pair.predict_by_hand,
        "measuring performance": lambda: bootstrap_by_hand(pair.labels, p_a, p_b, SEED),
        "bootstrap by counts": lambda: bootstrap_by_counts(pair.labels, p_a, p_b, SEED),
    }
    shap_peer = None
    ours_runs, ours_peaks, peer_runs, peer_peaks = [], [], [], []
    for _ in range(repeat):
        diff, seconds, peaks, peak = _timed_diff(pair.a, pair.data_a, pair.b, pair.data_b)
        ours_runs.append(seconds)
        ours_peaks.append({**peaks, "total": peak})
        rows, in_sample = explained_rows(diff, len(pair.X))
        if shap_peer is None:  # the method is known now: warm SHAP up (numba compiles)
            shap_peer = ShapPeer(pair, diff.reasons)
            shap_peer(pair.X[:2])
        timed = {stage: _timed(run) for stage, run in peers.items()}
        timed["explaining both models"] = _timed(lambda X=pair.X[rows], peer=shap_peer: peer(X))
        peer_runs.append({stage: run[0] for stage, run in timed.items()})
        peer_peaks.append({stage: run[1] for stage, run in timed.items()})
        results = {stage: run[2] for stage, run in timed.items()}
    ours, peer = _best(ours_runs), _best(peer_runs)
    ours_peak, peer_peak = _largest(ours_peaks), _largest(peer_peaks)

    def memory(stage: str, peer_stage: str | None = None) -> str:
        return (
            f"peak above the start: whybox {ours_peak[stage] / MB:,.0f} MB, "
            f"the peer {peer_peak[peer_stage or stage] / MB:,.0f} MB"
        )

    workload = pair.workload
    flips, decisions = results["predicting"], diff.decisions["flips"]["rows"]
    cohorts = "looking for cohorts where B is worse"
    hand_total = sum(
        peer[s] for s in ("predicting", "measuring performance", "explaining both models")
    )
    bootstrap = (
        f"{workload}: measuring performance",
        f"diff_models: paired bootstrap, {BOOTSTRAP} resamples",
    )
    return [
        Record(
            f"{workload}: predicting",
            "diff_models: predictions + decisions",
            pair.predicted_by,
            ours["predicting"],
            peer["predicting"],
            None,
            None,
            "cpu",
            note=f"{'same' if flips == decisions else 'DIFFERENT'} flips: whybox {decisions:,}, "
            f"by hand {flips:,}; whybox also summarises the change and lists the largest; "
            + memory("predicting"),
        ),
        Record(
            *bootstrap,
            f"numpy + sklearn roc_auc_score loop, {BOOTSTRAP} resamples",
            ours["measuring performance"],
            peer["measuring performance"],
            _interval_error(diff, results["measuring performance"]),
            0.0,
            "cpu",
            note="accuracy and AUC of A, B and B - A with 95 % intervals, the same "
            "resamples; error: max abs difference of the changes and interval ends; "
            + memory("measuring performance"),
        ),
        Record(
            *bootstrap,
            f"numpy, one sort, resamples as row counts, {BOOTSTRAP} resamples",
            ours["measuring performance"],
            peer["bootstrap by counts"],
            _interval_error(diff, results["bootstrap by counts"]),
            0.0,
            "cpu",
            note="what the stage could take: each resample a weighted Mann-Whitney count over "
            "rows sorted once; " + memory("measuring performance", "bootstrap by counts"),
        ),
        Record(
            f"{workload}: cohorts where B is worse",
            "diff_models: cohort tree + held-out sign tests",
            "none: nothing like it to script",
            ours[cohorts],
            None,
            None,
            None,
            "cpu",
            note=_cohort_note(diff, pair)
            + f"; peak above the start {ours_peak[cohorts] / MB:,.0f} MB",
        ),
        _reasons_record(
            pair,
            diff,
            shap_peer,
            rows,
            in_sample,
            results["explaining both models"],
            (ours["explaining both models"], peer["explaining both models"]),
            memory("explaining both models"),
        ),
        Record(
            f"{workload}: the whole diff",
            "diff_models",
            "predicting + sklearn bootstrap + SHAP, by hand",
            ours["total"],
            hand_total,
            None,
            None,
            "cpu",
            note=f"whybox's stages: {_shares(ours)}; by hand no cohort search and no summaries "
            f"of the change; peak above the start: whybox {ours_peak['total'] / MB:,.0f} MB",
        ),
    ]


def _reasons_record(
    pair: Pair,
    diff: VersionDiff,
    shap_peer: ShapPeer,
    rows: np.ndarray,
    in_sample: np.ndarray,
    peer_values: dict[str, np.ndarray],
    seconds: tuple[float, float],
    memory: str,
) -> Record:
    """The reasons stage against SHAP: errors of the features' mean |attribution| (what the
    diff reports) against exact values where the method samples, else against SHAP's."""
    reasons, names = diff.reasons, pair.data_a.feature_names
    ours = _reported_magnitudes(diff, names)
    theirs = _mean_magnitudes(peer_values, in_sample)
    exact = shap_peer.exact(rows)
    if exact is None:
        errors, against = (float(np.abs(ours - theirs).max()), 0.0), "SHAP's values"
    else:
        truth = _mean_magnitudes(exact, in_sample)
        errors = (float(np.abs(ours - truth).max()), float(np.abs(theirs - truth).max()))
        against = "exact values (exact-shapley, no budget)"
    shown = {
        k: v
        for k, v in reasons["params"].items()
        if k not in ("output_space", "chosen_by", "device", "seed")
    }
    return Record(
        f"{pair.workload}: explaining both models, {len(rows)} rows",
        f"diff_models: {reasons['method']} x2",
        shap_peer.name,
        *seconds,
        *errors,
        "cpu",
        note="; ".join(
            [
                f"{reasons['output_space']} of {reasons['target']!r}",
                *([", ".join(f"{k}={v}" for k, v in shown.items())] if shown else []),
            ]
        )
        + f"; error: max abs difference of a feature's mean |attribution| on the "
        f"{int(in_sample.sum())} sampled rows from {against}; {memory}",
    )


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: min(run[key] for run in runs) for key in runs[0]}


def _largest(runs: list[dict[str, int]]) -> dict[str, int]:
    return {key: max(run[key] for run in runs) for key in runs[0]}


def _shares(seconds: dict[str, float]) -> str:
    total = seconds["total"]
    return ", ".join(
        f"{STAGES[stage]} {seconds[stage]:.2f} s ({seconds[stage] / total:.0%})"
        for stage in STAGES
        if stage in seconds
    )


def _cohort_note(diff: VersionDiff, pair: Pair) -> str:
    """What the search reported, how it covers the planted cohort, and what the reported
    cohorts' own paired bootstraps take when timed again alone."""
    from whybox.model_zoo.performance import truth
    from whybox.trust.versions import paired_performance

    planted = in_cohort(pair.frame)
    reported = np.zeros(len(pair.frame), dtype=bool)
    for cohort in diff.cohorts:
        reported[cohort.members] = True
    found = (reported & planted).sum()
    rules = "; ".join(
        f"{c.rule} ({c.rows:,} rows, error {c.a_loss:.2f} -> {c.b_loss:.2f})" for c in diff.cohorts
    )
    labels = truth(pair.a, pair.data_a.labels)
    scores = [
        model.predict(data.values, "probability")
        for model, data in ((pair.a, pair.data_a), (pair.b, pair.data_b))
    ]
    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    for cohort in diff.cohorts:
        members = cohort.members
        paired_performance(
            diff.task, labels[members], scores[0][members], scores[1][members], "probability", rng
        )
    bootstraps = time.perf_counter() - start
    return (
        f"{len(diff.cohorts)} of {diff.cohort_search['candidates']} candidate leaves reported: "
        f"{rules or 'none'}; they hold {found / max(planted.sum(), 1):.0%} of the planted "
        f"cohort's {planted.sum():,} rows, which are {found / max(reported.sum(), 1):.0%} of "
        f"theirs; their paired bootstraps alone take {bootstraps:.2f} s"
    )


# --- the suite ----------------------------------------------------------------------------


def versions_suite(
    tree_rows: int = 100_000,
    mlp_rows: int = 10_000,
    trees: int = 500,
    depth: int = 6,
    training_rows: int = 20_000,
    mlp_features: int = 12,
    repeat: int = 3,
) -> list[Record]:
    """Two XGBoost versions compared on `tree_rows` rows and two MLP versions, on the
    table's first `mlp_features` columns (at least the 4 the planted cohort and the score
    need most), on `mlp_rows`; `repeat` timed rounds of each."""
    assert mlp_features >= 4, "the planted cohort's columns are among the first 4"
    honest = applicants(training_rows, seed=1)
    wrong = with_regression(honest)
    rows = applicants(max(tree_rows, mlp_rows), seed=2)

    a, b = train_xgboost(honest, 0, trees, depth), train_xgboost(wrong, 1, trees, depth)
    trees_pair = Pair(
        f"XGBoost {trees} trees, depth {depth}, {a.n_features} features, {tree_rows:,} rows",
        a,
        b,
        rows.iloc[:tree_rows],
        _probabilities_xgboost,
        "Booster.predict x2 + flips",
    )
    records = _compare(trees_pair, repeat)
    del trees_pair

    columns = [*honest.columns[:mlp_features], "Status"]
    a, b = train_mlp(honest[columns], 0), train_mlp(wrong[columns], 1)
    mlp_pair = Pair(
        f"MLP 2 x 32, {a.n_features} features, {mlp_rows:,} rows",
        a,
        b,
        rows.iloc[:mlp_rows][columns],
        _probabilities_torch,
        "forward + sigmoid x2 + flips",
    )
    records += _compare(mlp_pair, repeat)
    for record in records:
        peer_s = "" if record.peer_s is None else f" vs {record.peer_s:.3f} s ({record.peer})"
        print(f"versions: {record.workload}: {record.ours_s:.3f} s{peer_s}")
    return records
