"""How far to trust an explanation: faithfulness, robustness and sanity, on the user's model.

Each metric re-measures the model around the explained rows and compares what it sees with
what the attributions claim:

- deletion / insertion: the model's output as inputs are removed (set to the baseline) or
  added in the order of attribution, against random orders of the same inputs;
- faithfulness correlation: attribution mass of random subsets against the output change
  when the subset is removed (Bhatt et al. 2020);
- infidelity: squared error of attribution · noise against the output change under that
  noise (Yeh et al. 2019, `captum.metrics.infidelity`), against shuffled attributions;
- max-sensitivity: the largest relative change of the explanation under small input noise
  (`captum.metrics.sensitivity_max`);
- randomisation: rank correlation of |map| with the map of the network whose layers are
  re-initialised from the top down (Adebayo et al. 2018).

Tabular inputs are features; image inputs are pixels (a pixel's attribution is the sum over
its channels, and removing it sets every channel to the baseline). Every random draw comes
from generators keyed by the seed (deletion's orders and the correlation's subsets by the
seed and the row, so a row scores the same alone or in a batch), never from numpy's or
torch's global state.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

from whybox.explainers.agreement import rank_agreement
from whybox.explainers.base import Explainer, Explanation, Progress
from whybox.explainers.seeding import numpy_generator
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.lazy import LazyModule

torch = LazyModule("torch")


@dataclass(frozen=True)
class Metric:
    """What one quality metric measures, in words, and which way is better."""

    name: str
    title: str
    measures: str
    better: str
    """'higher' or 'lower'."""
    control: str
    """What the value is compared with: the control that `Score.reference` measures."""
    costly: bool = False
    """True where the metric explains the rows again (many times): run on request only."""


RANDOMISATION_FAILS = 0.5
"""A map whose rank correlation with the fully randomised network's map stays above this
barely depends on what the network learned: it fails the randomisation check."""
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "deletion",
            "Deletion",
            "How fast the output falls as inputs are set to the baseline, most important "
            "first, against random orders (ratio above 1: faster than random).",
            "higher",
            "random orders",
        ),
        Metric(
            "insertion",
            "Insertion",
            "How fast the output recovers as inputs are restored from the baseline, most "
            "important first, against random orders (ratio above 1: faster than random).",
            "higher",
            "random orders",
        ),
        Metric(
            "faithfulness_correlation",
            "Faithfulness correlation",
            "Correlation between the attribution of random groups of inputs and the output "
            "change when that group is set to the baseline (1: in step, 0: unrelated).",
            "higher",
            "no link",
        ),
        Metric(
            "infidelity",
            "Infidelity",
            "Squared error of the attribution of random groups of inputs, scaled to fit "
            "best, against the output change when that group is set to the baseline.",
            "lower",
            "the same attributions shuffled",
        ),
        Metric(
            "max_sensitivity",
            "Max-sensitivity",
            "The largest change of the explanation, relative to its size, when the input "
            "moves a little (0: stable).",
            "lower",
            "none",
            costly=True,
        ),
        Metric(
            "randomisation",
            "Model randomisation",
            "Rank correlation of |map| with the map of the same network with its layers "
            "re-initialised from the top (near 0: the map depends on what the model "
            "learned).",
            "lower",
            f"fails above {RANDOMISATION_FAILS}",
            costly=True,
        ),
    )
}
CHEAP = tuple(name for name, m in METRICS.items() if not m.costly)
"""Metrics that only evaluate the model: computed by default."""
ALL = tuple(METRICS)

ALPHA = 0.05
BOOTSTRAP = 200
RANDOM_ORDERS = {"tabular": 10, "image": 3}
"""Random orders per row for deletion and insertion: an image costs a forward pass per
step and order."""
IMAGE_STEPS = 20
MAX_TABULAR_STEPS = 50
CORRELATION_RUNS = 100
NOISE_SAMPLES = 10
SENSITIVITY_RADIUS = 0.02
"""Max-sensitivity's noise: uniform within this share of each feature's spread."""
RANDOMISATION_STAGES = 4
MAX_ROWS = 1000
"""Rows (images: 32) measured at most; more explained rows are sampled, with the seed."""
MAX_IMAGES = 32


@dataclass
class Score:
    """One metric measured on one explanation, or why it does not apply."""

    metric: str
    value: float | None = None
    interval: tuple[float, float] | None = None
    reference: float | None = None
    """The same measure for the control: random orders or shuffled attributions."""
    p_value: float | None = None
    verdict: str = ""
    reason: str = ""
    """Why the metric does not apply to this model or method; empty where it does."""
    per_row: np.ndarray | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def applicable(self) -> bool:
        return not self.reason

    def record(self) -> dict[str, Any]:
        info = METRICS[self.metric]
        return {
            "metric": self.metric,
            "title": info.title,
            "measures": info.measures,
            "better": info.better,
            "control": info.control,
            "applicable": self.applicable,
            "reason": self.reason or None,
            "value": _rounded(self.value),
            "interval": None if self.interval is None else [_rounded(v) for v in self.interval],
            "reference": _rounded(self.reference),
            "p_value": _rounded(self.p_value),
            "verdict": self.verdict,
            "seconds": round(self.seconds, 4),
            "details": self.details,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")


@dataclass
class Quality:
    """The quality scores of one explanation: what `whybox explain --quality` writes."""

    method: str
    rows: int
    seed: int
    baseline: str
    scores: dict[str, Score]
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "rows": self.rows,
            "seed": self.seed,
            "baseline": self.baseline,
            "scores": [score.record() for score in self.scores.values()],
            "notes": self.notes,
        }


class _Probe:
    """Other rows to explain, against `dataset`'s own background: an explainer given them
    sees the same reference (background, mean row, categories) as for the real rows."""

    def __init__(self, dataset: Dataset, values: np.ndarray) -> None:
        self._dataset, self._values = dataset, values

    @property
    def values(self) -> np.ndarray:
        return self._values

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)


def explainer_of(explanation: Explanation) -> Explainer:
    """A new explainer with the method and parameters that made `explanation`."""
    from whybox.explainers import registry

    cls = registry.get(explanation.method)
    known = {p.name for p in cls.params}
    return cls(**{k: v for k, v in explanation.params.items() if k in known})


def baseline_of(explanation: Explanation, model: Model, dataset: Dataset) -> tuple[np.ndarray, str]:
    """The input that 'removed' means, (1, *input shape), and its description in words:
    the method's own baseline where it names one, else the background's mean row for
    tables (categories at their most frequent) and a black image for images."""
    choice = explanation.params.get("baseline", "auto")
    shape = explanation.data.shape[1:]
    if choice == "black" or (choice == "auto" and model.modality == "image"):
        return np.zeros((1, *shape)), "black" if model.modality == "image" else "zero"
    size = int(explanation.params.get("background", 100))
    row = dataset.mean_row(size, int(explanation.seed))
    return row, (
        f"its mean over {min(size, len(dataset)):,} background rows (a category: the most frequent)"
    )


def _units(explanation: Explanation) -> np.ndarray:
    """Per row, one attribution per unit that is removed together: (rows, units)."""
    values = np.asarray(explanation.values, dtype=np.float64)
    if values.ndim == 4:  # images: a pixel's channels together
        return values.sum(axis=1).reshape(len(values), -1)
    return values.reshape(len(values), -1)


def _with_removed(x: np.ndarray, baseline: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Copies of input `x`, one per row of `masks` (n, units), with the masked units set to
    the baseline; for images a unit is a pixel, all its channels."""
    if x.ndim == 3:  # (C, H, W): masks over H * W pixels
        masks = masks.reshape(len(masks), 1, *x.shape[1:])
    return np.where(masks, baseline[0], x[None]).astype(x.dtype, copy=False)


def _target_outputs(model: Model, X: np.ndarray, space: str, target: int) -> np.ndarray:
    return model.predict(X, space)[:, target]


def _curve_steps(units: int, modality: str) -> np.ndarray:
    """How many units are removed at each point of a curve, 0 first and all last."""
    points = min(units, IMAGE_STEPS if modality == "image" else MAX_TABULAR_STEPS)
    return np.unique(np.round(np.linspace(0, units, points + 1)).astype(int))


def _area(curve: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Area under curves (..., points) over the removed share, 0 to 1."""
    return np.trapezoid(curve, steps / steps[-1], axis=-1)


def curves(
    model: Model,
    explanation: Explanation,
    baseline: np.ndarray,
    orders: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Deletion and insertion curves of every row for the attribution order and for
    `orders` random orders.

    Returns `steps` (units removed at each point) and `deletion`/`insertion` arrays of the
    target output, (rows, 1 + orders, points): order 0 is the attribution's (most positive
    first), the others random. Deleting all units gives the baseline's output and inserting
    all gives the row's own, whatever the order.
    """
    attributions = _units(explanation)
    rows, units = attributions.shape
    modality = model.modality
    orders = RANDOM_ORDERS[modality] if orders is None else orders
    steps = _curve_steps(units, modality)
    ranked = np.empty((rows, 1 + orders, units), dtype=np.int64)
    ranked[:, 0] = np.argsort(-attributions, axis=1, kind="stable")
    for i in range(rows):  # a row's random orders are its own, alone or in any batch
        rng = numpy_generator(seed, explanation.data[i])
        ranked[i, 1:] = np.array([rng.permutation(units) for _ in range(orders)]).reshape(
            orders, units
        )
    # removed[o, k, u]: unit u is among the first steps[k] of order o
    position = np.argsort(ranked, axis=2)
    out = {"steps": steps}
    space = explanation.output_space
    for name in ("deletion", "insertion"):
        out[name] = np.empty((rows, 1 + orders, len(steps)))
    for i in range(rows):
        x = np.asarray(explanation.data[i], dtype=np.float64 if modality == "tabular" else None)
        removed = position[i][:, None, :] < steps[None, :, None]  # (orders, points, units)
        flat = removed.reshape(-1, units)
        target = int(explanation.target[i])
        out["deletion"][i] = _target_outputs(
            model, _with_removed(x, baseline, flat), space, target
        ).reshape(1 + orders, len(steps))
        out["insertion"][i] = _target_outputs(
            model, _with_removed(x, baseline, ~flat), space, target
        ).reshape(1 + orders, len(steps))
        if progress:
            progress(i + 1, rows)
    return out


def _bootstrap(per_row: Sequence[np.ndarray], statistic: Callable[..., float], seed: int):
    """A 95 % percentile interval of `statistic` over rows resampled with replacement."""
    rows = len(per_row[0])
    if rows < 2:
        return None
    rng = np.random.default_rng([seed, 0xB007])
    draws = [
        statistic(*(values[index] for values in per_row))
        for index in rng.integers(0, rows, size=(BOOTSTRAP, rows))
    ]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return float(low), float(high)


def _one_sided(differences: np.ndarray) -> float | None:
    """p-value that the per-row differences are centred above 0 (Wilcoxon signed-rank)."""
    differences = differences[np.isfinite(differences)]
    if len(differences) < 6:
        return None
    if not differences.any():
        return 1.0
    # With ties or zeros scipy's default for few rows is a 2^n permutation test (seconds
    # for a dozen rows); the normal approximation is what larger samples get anyway.
    tied = len(np.unique(np.abs(differences))) < len(differences) or not differences.all()
    return float(
        wilcoxon(
            differences,
            alternative="greater",
            zero_method="zsplit",
            method="asymptotic" if tied else "auto",
        ).pvalue
    )


def deletion_insertion(
    model: Model,
    explanation: Explanation,
    baseline: np.ndarray,
    orders: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[Score, Score]:
    """Deletion and insertion against random orders, as ratios of areas.

    Each row's curves are scaled to that row's own output range over all its curves, so
    rows weigh alike and the areas are positive in every output space. Deletion's ratio is
    the random orders' mean area over the attribution order's (a faster fall is a smaller
    area), insertion's the attribution order's over the random orders'; above 1 is better
    than random. The p-value is a one-sided Wilcoxon test over rows.
    """
    started = time.perf_counter()
    measured = curves(model, explanation, baseline, orders, seed, progress)
    steps = measured["steps"]
    both = np.concatenate([measured["deletion"], measured["insertion"]], axis=1)
    low = both.min(axis=(1, 2), keepdims=True)
    span = both.max(axis=(1, 2), keepdims=True) - low
    flat = span[:, 0, 0] <= 1e-12
    scores = []
    for name, faster_is_lower in (("deletion", True), ("insertion", False)):
        curve = measured[name]
        areas = _area((curve - low) / np.where(span > 1e-12, span, 1.0), steps)[~flat]
        attributed, random = areas[:, 0], areas[:, 1:].mean(axis=1)
        pair = (random, attributed) if faster_is_lower else (attributed, random)

        def ratio(top: np.ndarray, bottom: np.ndarray) -> float:
            return float(top.mean() / max(bottom.mean(), 1e-12))

        score = Score(name, reference=1.0, details={"steps": steps.tolist()})
        if not len(attributed):
            score.reason = "the model's output does not move on these rows"
        else:
            score.value = ratio(*pair)
            score.interval = _bootstrap(pair, ratio, seed)
            score.p_value = _one_sided(pair[0] - pair[1])
            beaten = areas[:, 1:] > areas[:, :1] if faster_is_lower else areas[:, 1:] < areas[:, :1]
            score.per_row = beaten.mean(axis=1)
            score.details.update(
                attribution_curve=curve[:, 0].mean(axis=0).tolist(),
                random_curve=curve[:, 1:].mean(axis=(0, 1)).tolist(),
                random_orders=int(curve.shape[1] - 1),
                share_of_random_orders_beaten=float(beaten.mean()),
                rows_measured=int(len(attributed)),
            )
            score.verdict = _compared(score.value > 1, score.p_value, "better", "random orders")
        scores.append(score)
    seconds = time.perf_counter() - started
    for score in scores:
        score.seconds = seconds / 2
    return scores[0], scores[1]


def _compared(better: bool, p_value: float | None, claim: str, control: str) -> str:
    """A comparison with the control in words: `claim` ('better', 'lower') holds or not."""
    if p_value is None:
        return f"{'' if better else 'not '}{claim} than {control} (too few rows for a test)"
    if p_value < ALPHA and better:
        return f"{claim} than {control} (p = {p_value:.2g})"
    return f"not clearly {claim} than {control} (p = {p_value:.2g})"


def faithfulness_correlation(
    model: Model,
    explanation: Explanation,
    baseline: np.ndarray,
    runs: int = CORRELATION_RUNS,
    subset: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> Score:
    """Per row, the Pearson correlation over `runs` random subsets of `subset` units
    between their summed attribution and the output drop when they are set to the
    baseline; the mean over rows (Bhatt et al. 2020). A row whose drops or sums do not vary
    counts as 0."""
    started = time.perf_counter()
    attributions = _units(explanation)
    rows, units = attributions.shape
    size = subset or (
        min(224, max(1, units // 4)) if model.modality == "image" else max(1, round(units / 4))
    )
    if size >= units:
        return Score(
            "faithfulness_correlation",
            reason=f"needs more than {units} inputs to sample subsets of",
        )
    space = explanation.output_space
    correlations = np.empty(rows)
    for i in range(rows):
        rng = numpy_generator(seed, explanation.data[i])
        chosen = np.argsort(rng.random((runs, units)), axis=1)[:, :size]
        masks = np.zeros((runs, units), dtype=bool)
        np.put_along_axis(masks, chosen, True, axis=1)
        x = np.asarray(explanation.data[i])
        target = int(explanation.target[i])
        outputs = _target_outputs(
            model, np.concatenate([x[None], _with_removed(x, baseline, masks)]), space, target
        )
        drops = outputs[0] - outputs[1:]
        sums = (masks * attributions[i]).sum(axis=1)
        correlations[i] = _pearson(sums, drops)
        if progress:
            progress(i + 1, rows)
    score = Score(
        "faithfulness_correlation",
        value=float(correlations.mean()),
        interval=_bootstrap([correlations], np.mean, seed),
        reference=0.0,
        p_value=_one_sided(correlations),
        per_row=correlations,
        seconds=time.perf_counter() - started,
        details={"runs": runs, "subset": size},
    )
    strength = "strong" if score.value >= 0.5 else "weak" if score.value > 0.2 else "no"
    tested = "" if score.p_value is None else f" (p = {score.p_value:.2g} against no link)"
    score.verdict = f"{strength} link between attribution and output change{tested}"
    return score


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 1e-12 else 0.0


def _noise_scale(model: Model, dataset: Dataset, explanation: Explanation) -> np.ndarray:
    """Per input element, the spread that noise is scaled by: each numeric feature's
    standard deviation in the background (0 for categorical features, whose codes have no
    distance), 1 for pixels."""
    shape = explanation.data.shape[1:]
    if model.modality == "image":
        return np.ones(shape)
    background = dataset.background(
        int(explanation.params.get("background", 100)), explanation.seed
    )
    scale = np.nan_to_num(np.nanstd(background, axis=0))
    categorical = [
        j for j, name in enumerate(explanation.feature_names) if name in explanation.categories
    ]
    scale[categorical] = 0.0
    return scale


def infidelity(
    model: Model,
    explanation: Explanation,
    baseline: np.ndarray,
    samples: int = NOISE_SAMPLES,
    seed: int = 0,
    progress: Progress | None = None,
) -> Score:
    """`captum.metrics.infidelity` with removal perturbations (Yeh et al. 2019): each draw
    sets a random quarter of the inputs to the baseline, and the squared error between
    their summed attribution, scaled to fit best (`normalize=True`), and the output drop is
    averaged; against the same attributions shuffled across inputs, on the same draws.

    Captum is given the removal masks as inputs (zeros: nothing removed) and a forward
    function that applies them to each row, so one call serves tables and images."""
    from captum.metrics import infidelity as captum_infidelity

    started = time.perf_counter()
    attributions = _units(explanation)
    rows, units = attributions.shape
    data = np.asarray(explanation.data)
    shuffled = np.random.default_rng([seed, 0x1F1]).permuted(attributions, axis=1)
    targets = torch.from_numpy(np.asarray(explanation.target, dtype=np.int64))
    positions = torch.arange(rows, dtype=torch.int64)

    def forward(masks: Any, row: Any) -> Any:
        removed = masks.numpy() > 0.5
        inputs = np.stack(
            [
                _with_removed(data[r], baseline, m[None])[0]
                for r, m in zip(row.numpy(), removed, strict=True)
            ]
        )
        return torch.from_numpy(model.predict(inputs, explanation.output_space))

    def measure(values: np.ndarray) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)

        def perturb(nothing_removed: Any) -> tuple[Any, Any]:
            masks = (torch.rand(nothing_removed.shape, generator=generator) < 0.25).double()
            return masks, masks

        return captum_infidelity(
            forward,
            perturb,
            torch.zeros((rows, units), dtype=torch.float64),
            torch.from_numpy(values),
            additional_forward_args=(positions,),
            target=targets,
            n_perturb_samples=samples,
            normalize=True,
        ).numpy()

    attributed = measure(attributions)
    if progress:
        progress(1, 2)
    control = measure(shuffled)
    if progress:
        progress(2, 2)
    score = Score(
        "infidelity",
        value=float(attributed.mean()),
        reference=float(control.mean()),
        interval=_bootstrap([attributed], np.mean, seed),
        p_value=_one_sided(control - attributed),
        per_row=attributed,
        seconds=time.perf_counter() - started,
        details={"removed": "a random quarter of the inputs per draw", "samples": samples},
    )
    score.verdict = _compared(
        score.value < score.reference, score.p_value, "lower", "shuffled attributions"
    )
    return score


def _explain_rows(
    explainer: Explainer, model: Model, dataset: Dataset, X: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """`explainer`'s values for rows `X` against `dataset`'s background, for `targets`."""
    return explainer.explain(model, _Probe(dataset, X), target=targets).values


def max_sensitivity(
    explainer: Explainer,
    model: Model,
    dataset: Dataset,
    explanation: Explanation,
    samples: int = NOISE_SAMPLES,
    seed: int = 0,
    progress: Progress | None = None,
) -> Score:
    """`captum.metrics.sensitivity_max`: per row the largest ||e(x + δ) − e(x)|| / ||e(x)||
    over `samples` draws of δ uniform within SENSITIVITY_RADIUS of each feature's spread."""
    from captum.metrics import sensitivity_max

    started = time.perf_counter()
    scale = torch.from_numpy(_noise_scale(model, dataset, explanation) * SENSITIVITY_RADIUS)
    if not scale.any():
        return Score(
            "max_sensitivity", reason="every input is categorical: noise has no meaning there"
        )
    generator = torch.Generator().manual_seed(seed)
    dtype = np.float32 if model.modality == "image" else np.float64
    done = [0]

    def perturb(inputs: Any) -> Any:
        noise = (torch.rand(inputs.shape, generator=generator, dtype=inputs.dtype) * 2 - 1) * scale
        return inputs + noise.to(inputs.dtype)

    def explain(inputs: Any, target: Any) -> Any:
        if isinstance(inputs, tuple):  # Captum passes the inputs as one, the noisy as the other
            (inputs,) = inputs
        values = _explain_rows(
            explainer, model, dataset, inputs.detach().cpu().numpy().astype(dtype), target.numpy()
        )
        done[0] += len(values)
        if progress:
            progress(min(done[0], total), total)
        return (torch.from_numpy(np.asarray(values, dtype=np.float64)),)

    total = len(explanation.values) * (samples + 1)
    sensitivities = sensitivity_max(
        explain,
        torch.from_numpy(np.array(explanation.data, dtype=np.float64)),
        perturb_func=perturb,
        n_perturb_samples=samples,
        target=torch.from_numpy(np.asarray(explanation.target, dtype=np.int64)),
    ).numpy()
    score = Score(
        "max_sensitivity",
        value=float(sensitivities.mean()),
        interval=_bootstrap([sensitivities], np.mean, seed),
        per_row=sensitivities,
        seconds=time.perf_counter() - started,
        details={
            "radius": f"uniform, {SENSITIVITY_RADIUS:g} of each feature's spread",
            "samples": samples,
        },
    )
    score.verdict = (
        "stable under small noise"
        if score.value < 0.1
        else "moderately sensitive to small noise"
        if score.value < 0.5
        else "unstable: small noise changes the explanation a lot"
    )
    return score


def _layers(module: Any) -> list[tuple[str, Any]]:
    """The layers with parameters of their own, from the output back to the input."""
    return [
        (name, layer)
        for name, layer in module.named_modules()
        if hasattr(layer, "reset_parameters") and any(True for _ in layer.parameters(recurse=False))
    ][::-1]


def _reinitialise(layer: Any, generator: Any) -> None:
    """Draw `layer`'s parameters anew as PyTorch's own initialisation does, from
    `generator`: linear and convolution layers' Kaiming-uniform weights and uniform biases;
    normalisation layers back to ones and zeros; any other parameter from a normal with its
    own spread."""
    from torch import nn

    with torch.no_grad():
        if isinstance(layer, nn.Linear | nn.modules.conv._ConvNd):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        elif isinstance(layer, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
            layer.reset_parameters()
        else:
            for parameter in layer.parameters(recurse=False):
                spread = float(parameter.std()) if parameter.numel() > 1 else 1.0
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * spread)


def randomisation(
    explainer: Explainer,
    model: Model,
    dataset: Dataset,
    explanation: Explanation,
    stages: int = RANDOMISATION_STAGES,
    seed: int = 0,
    progress: Progress | None = None,
) -> Score:
    """Cascading model-parameter randomisation (Adebayo et al. 2018): the network's layers
    re-initialised from the output back, and at `stages` points of the cascade (the top
    layer alone first, every layer last) the rank correlation of each row's |map| with its
    map on the trained network."""
    started = time.perf_counter()
    if reason := not_applicable("randomisation", model):
        return Score("randomisation", reason=reason)
    randomised = copy.deepcopy(model.module).cpu()
    layers = _layers(randomised)
    twin = replace(model, module=randomised, predict_fn=None, notes=list(model.notes))
    points = sorted({1, len(layers), *np.linspace(1, len(layers), stages).round().astype(int)})
    X, targets = np.asarray(explanation.data), np.asarray(explanation.target)
    trained = explanation.values
    cascade = []
    for count, (name, layer) in enumerate(layers, start=1):
        # Each layer from its own generator seeded `seed + 1`, as Quantus's cascade does,
        # so that the two can be checked against each other.
        _reinitialise(layer, torch.Generator().manual_seed(seed + 1))
        if count not in points:
            continue
        twin.to(model.device)
        similarity = rank_agreement(trained, _explain_rows(explainer, twin, dataset, X, targets))
        randomised.cpu()
        cascade.append({"layers": count, "down_to": name, "correlation": float(similarity.mean())})
        if progress:
            progress(len(cascade), len(points))
    final = similarity
    score = Score(
        "randomisation",
        value=float(final.mean()),
        interval=_bootstrap([final], np.mean, seed),
        per_row=final,
        seconds=time.perf_counter() - started,
        details={"cascade": cascade, "layers": len(layers), "threshold": RANDOMISATION_FAILS},
    )
    score.verdict = (
        f"fails the randomisation check: with every layer re-initialised the map still "
        f"ranks inputs like the trained model's (correlation {score.value:.2f})"
        if score.value > RANDOMISATION_FAILS
        else f"passes the randomisation check: the map changes when the weights do "
        f"(correlation {score.value:.2f})"
    )
    return score


def not_applicable(metric: str, model: Model) -> str:
    """Why `metric` cannot be measured on `model`, in words; empty where it can."""
    if metric == "randomisation":
        if model.module is None or model.torch_module() is None:
            return "the model is not a network whose weights whybox can re-initialise"
        if not _layers(model.module):
            return "the network has no layers with parameters"
    return ""


def estimate_seconds(metric: str, explanation: Explanation, model: Model) -> float:
    """About how long `metric` takes on `explanation`'s rows, from the explanation's own
    time (re-explaining metrics) or the units to evaluate (the others)."""
    rows, units = _units(explanation).shape
    per_explanation = max(explanation.seconds, 1e-3)
    if metric == "max_sensitivity":
        return per_explanation * (NOISE_SAMPLES + 1)
    if metric == "randomisation":
        layers = len(_layers(model.module)) if model.module is not None else 0
        return per_explanation * min(RANDOMISATION_STAGES, layers)
    per_prediction = _seconds_per_evaluation(model, explanation)
    evaluations = {
        "deletion": (1 + RANDOM_ORDERS[model.modality]) * len(_curve_steps(units, model.modality)),
        "insertion": (1 + RANDOM_ORDERS[model.modality]) * len(_curve_steps(units, model.modality)),
        "faithfulness_correlation": CORRELATION_RUNS + 1,
        "infidelity": 2 * NOISE_SAMPLES,
    }[metric]
    return rows * evaluations * per_prediction


def _seconds_per_evaluation(model: Model, explanation: Explanation) -> float:
    """The model's time per input, timed on copies of the first explained row in a batch
    about as large as the metrics' own (a network's time per row falls with the batch)."""
    size = 8 if model.modality == "image" else 512
    batch = np.repeat(np.asarray(explanation.data[:1]), size, axis=0)
    started = time.perf_counter()
    model.predict(batch, explanation.output_space)
    return (time.perf_counter() - started) / len(batch)


def assess(
    explanation: Explanation,
    model: Model,
    dataset: Dataset,
    metrics: Sequence[str] = CHEAP,
    seed: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    max_rows: int | None = None,
) -> Quality:
    """The quality of `explanation` of `dataset`'s rows: each metric asked for, or why it
    does not apply. Over `max_rows` explained rows (MAX_ROWS, MAX_IMAGES by default), a
    seeded sample of them is measured. `progress(metric, done, total)` is called as each
    advances; an exception raised from it stops the assessment (the explanation itself is
    untouched)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise WhyboxError(
            f"unknown quality metric(s) {', '.join(unknown)}; choose from {', '.join(ALL)}"
        )
    seed = explanation.seed if seed is None else seed
    explained = len(explanation.values)
    limit = max_rows or (MAX_IMAGES if model.modality == "image" else MAX_ROWS)
    notes = []
    if explained > limit:
        picked = np.sort(np.random.default_rng([seed, 0x5A3]).choice(explained, limit, False))
        explanation = explanation.subset(picked)
        unit = "images" if model.modality == "image" else "rows"
        notes.append(
            f"Measured on {limit:,} of the {explained:,} explained {unit}, drawn with seed {seed}."
        )
    baseline, described = baseline_of(explanation, model, dataset)
    scores: dict[str, Score] = {}

    def step(metric: str) -> Progress:
        return lambda done, total: progress(metric, done, total) if progress else None

    wanted = [m for m in ALL if m in metrics]
    for metric in wanted:
        if metric in scores:
            continue
        if metric in ("deletion", "insertion"):
            scores["deletion"], scores["insertion"] = deletion_insertion(
                model, explanation, baseline, seed=seed, progress=step("deletion and insertion")
            )
        elif metric == "faithfulness_correlation":
            scores[metric] = faithfulness_correlation(
                model, explanation, baseline, seed=seed, progress=step(metric)
            )
        elif metric == "infidelity":
            scores[metric] = infidelity(
                model, explanation, baseline, seed=seed, progress=step(metric)
            )
        else:
            measure = max_sensitivity if metric == "max_sensitivity" else randomisation
            scores[metric] = measure(
                explainer_of(explanation),
                model,
                dataset,
                explanation,
                seed=seed,
                progress=step(metric),
            )
    if model.modality == "image":
        notes.append(
            "Pixels are removed together, all channels at once; a pixel's attribution is "
            "the sum over its channels."
        )
    return Quality(
        method=explanation.method,
        rows=len(explanation.values),
        seed=seed,
        baseline=described,
        scores={m: scores[m] for m in wanted},
        notes=notes,
    )


RANKING_ROWS = {"tabular": 20, "image": 4}
"""Rows (images) each method explains when methods are ranked: a sample, for speed."""
RANKED_BY = ("deletion", "insertion", "faithfulness_correlation")


@dataclass
class Ranked:
    """One method in the ranking: its faithfulness on the sample and its time, or why it
    could not be ranked."""

    method: str
    seconds_per_row: float | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    faithfulness: float | None = None
    """The mean of the deletion and insertion ratios (1: no better than a random order)."""
    reason: str = ""


def rank_methods(
    model: Model,
    dataset: Dataset,
    rows: Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Ranked]:
    """Every applicable explainer (or `methods`) on the same sample of rows, the most
    faithful first, with its time per row; those that cannot run last, with why.

    The sample is RANKING_ROWS rows drawn with `seed` where `rows` is not given."""
    from whybox.explainers import registry

    if rows is None:
        size = min(len(dataset), RANKING_ROWS[model.modality])
        rows = np.sort(np.random.default_rng([seed, 0x4A7]).choice(len(dataset), size, False))
    names = list(methods or [name for name in registry.names() if name != "auto"])
    ranked = []
    for done, name in enumerate(names, start=1):
        ranked.append(_ranked(name, model, dataset, rows, seed))
        if progress:
            progress(done, len(names))
    return sorted(ranked, key=lambda r: (r.faithfulness is None, -(r.faithfulness or 0.0)))


def _ranked(name: str, model: Model, dataset: Dataset, rows: Sequence[int], seed: int) -> Ranked:
    from whybox.explainers import registry

    try:
        explainer = registry.get(name)(seed=seed)
        support = explainer.supports(model, dataset)
        if not support:
            return Ranked(name, reason=support.reason)
        explanation = explainer.explain(model, dataset, rows)
        measured = assess(explanation, model, dataset, RANKED_BY, seed=seed)
    except Exception as exc:  # a plugin's bug too: one line in the table, the others go on
        return Ranked(name, reason=f"failed: {exc}")
    scores = {metric: score.value for metric, score in measured.scores.items()}
    intervals = {metric: score.interval for metric, score in measured.scores.items()}
    ratios = [scores[m] for m in ("deletion", "insertion") if scores[m] is not None]
    return Ranked(
        name,
        seconds_per_row=explanation.seconds / len(explanation.values),
        scores=scores,
        intervals=intervals,
        faithfulness=float(np.mean(ratios)) if ratios else None,
        reason="" if ratios else measured.scores["deletion"].reason,
    )
