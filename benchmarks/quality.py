"""Explanation-quality metrics: whybox's `explainers.quality` against Quantus's, on the same
model, rows, attributions and settings, and each against the explanation they measure.

Two workloads (`python -m benchmarks --only quality`):

1. ResNet-18, random weights, 224 x 224 random images (as `benchmarks.images` builds them:
   nothing is downloaded), explained with saliency: integrated gradients took 34 s on 8
   images with 16 steps on the 2-core CPU (256 steps, 32 images: about half an hour), and
   max-sensitivity and randomisation explain every image again 11 and 4 times (Quantus's
   layer-by-layer MPRT, once per layer). `quality_suite` takes 32
   images by default, as the issue asks; `python -m benchmarks` runs 8 on the CPU (16 took
   18 minutes on the loaded 2-core machine, 6 of them in Quantus's layer-by-layer MPRT).
2. The credit demo MLP (`demo:credit-mlp`) on 1,000 rows of `demo:credit`, explained with
   integrated gradients (whybox's default 256 steps).

Each metric runs once (no warm-up round: each takes seconds to minutes), whybox's then
Quantus's, so that a busy spell on the machine hits both. whybox's per-metric seconds for
deletion/insertion and faithfulness correlation are those the metrics time themselves
inside one `assess(..., quality.CHEAP)` call, whose whole time is its own row. Quantus is
configured as `tests/explainers/test_quality_quantus.py` checks it against whybox, with its
own random draws here (the same distributions, not the same numbers):

- deletion curve (`deletion_insertion`: deletion and insertion, each for the attribution
  order and 10 random orders per row, 3 per image) and the attribution order's curves
  alone (`curves(orders=0)`) against `PixelFlipping`
  (deletion, attribution order only),
  removing the same inputs: a feature a step on the table (13 steps); on the images
  whybox's 20 steps of 2,508.8 pixels (all channels), and for Quantus the step closest to
  that it accepts: its step must divide one channel's 50,176 pixels while it counts steps
  over all 150,528 channel values, so 21 steps of 7,168 values (2,389.3 pixels; the
  attributions are summed over channels and broadcast back, so a pixel's 3 values sort
  together and go together);
- `faithfulness_correlation` (100 random subsets per row, a quarter of the features, 224
  pixels) against `FaithfulnessCorrelation` (same runs, Pearson, baseline, subset size; on
  images Quantus draws channel values, not pixels: 672 values, per-channel attributions);
- `max_sensitivity` (10 noisy copies, uniform within 0.02 of each feature's spread, 0.02 a
  pixel) against `MaxSensitivity` (10 samples of the same noise; its `explain_func` is the
  same whybox explainer);
- `randomisation` (4 points of the top-down cascade; the credit MLP has 3 layers) against
  `MPRT` (top-down, Spearman of |map|) with `skip_layers=True` (the original and the fully
  randomised network only: the least Quantus does) and as by default (every layer with
  parameters in turn);
- `assess(..., CHEAP)` (deletion, insertion, faithfulness correlation, infidelity)
  against PixelFlipping + FaithfulnessCorrelation (Quantus's Infidelity is not run).

Quantus runs with its default batch of 64 rows. The records carry two ratios: Quantus's
time over whybox's (`speedup`) and each metric's time over the explanation's.
Timings never gate a test.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from benchmarks.common import Record
from whybox.explainers import quality
from whybox.explainers.base import Explainer, Explanation
from whybox.explainers.gradients import IntegratedGradients, Saliency
from whybox.model_zoo import Model

SEED = 0


@dataclass
class QualityRecord(Record):
    """A `Record` with the time of the explanation the metric measures."""

    explanation_s: float | None = None

    @property
    def ours_per_explanation(self) -> float | None:
        return None if not self.explanation_s else self.ours_s / self.explanation_s

    @property
    def peer_per_explanation(self) -> float | None:
        if not self.explanation_s or self.peer_s is None:
            return None
        return self.peer_s / self.explanation_s


# --- the workloads ------------------------------------------------------------------------


def resnet_workload(depth: int = 18, n_images: int = 32, side: int = 224, classes: int = 1000):
    """A ResNet with random weights and `n_images` random images (seeded), as
    `benchmarks.images` builds them, on the CPU."""
    from benchmarks.images import random_images
    from whybox.model_zoo.architectures import ResNet
    from whybox.model_zoo.wrap import wrap_torch

    torch.manual_seed(SEED)
    network = ResNet(depth, num_classes=classes).eval()
    model = wrap_torch(network, (3, 0, 0), "logits", name=f"resnet{depth}")
    images, _, _ = random_images(model, n_images, side)
    return model, images, f"ResNet-{depth} {side}x{side}, {n_images} images, saliency"


def credit_workload(rows: int = 1000):
    """The credit demo MLP and its data; the first `rows` rows are explained."""
    from whybox.model_zoo import demos

    model = demos.resolve_model("demo:credit-mlp")
    data = demos.resolve_data("demo:credit", model)
    return model, data, range(min(rows, len(data)))


# --- Quantus, configured as whybox ----------------------------------------------------------


def _explain_func(explainer: Explainer, trained: Model, data: Any) -> Callable:
    """A Quantus `explain_func`: `explainer` on the network Quantus hands it (the trained
    one or MPRT's randomised copy), against `data`'s background."""

    def explain_func(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, **kw):
        network = trained
        if model is not trained.module:
            network = replace(trained, module=model, predict_fn=None, notes=[])
        X = np.asarray(inputs, dtype=np.float32 if trained.modality == "image" else None)
        return explainer.explain(network, quality._Probe(data, X), target=targets).values

    return explain_func


def _baseline_replacement(baseline: np.ndarray) -> Callable:
    """A Quantus perturb_func that sets the indexed features to the baseline row's values."""

    def perturb(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
        out = arr.copy()
        out[np.arange(len(arr))[:, None], indices] = baseline.reshape(-1)[indices]
        return out

    return perturb


def _scaled_uniform(scale: np.ndarray, seed: int) -> Callable:
    """A Quantus perturb_func adding noise uniform within `scale` of each feature."""
    rng = np.random.default_rng(seed)

    def perturb(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
        noise = rng.uniform(-1.0, 1.0, arr.shape) * scale.reshape(1, -1)
        return (arr + noise).astype(arr.dtype)

    return perturb


def _quantus_inputs(
    model: Model, explanation: Explanation, baseline: np.ndarray, channel: bool = False
) -> tuple[torch.nn.Module, dict, dict]:
    """The network, perturbation arguments and call arguments that make Quantus remove
    inputs as whybox does, to 0 (black) on images. Without `channel`, images' attributions
    are summed over channels: Quantus broadcasts them back over the channels, so a pixel's
    values sort together and go together. With `channel`, images keep one attribution per
    channel value (Quantus's FaithfulnessCorrelation draws channel values, not pixels),
    and table rows are given as (n, 1, features) (Quantus 0.6.0's FaithfulnessCorrelation
    refuses (n, features))."""
    network = model.torch_module(explanation.output_space)
    x, a = np.array(explanation.data), np.array(explanation.values)
    if model.modality == "image":
        assert not baseline.any()
        perturb: dict = {"perturb_baseline": 0.0}
        if not channel:
            a = a.sum(axis=1, keepdims=True)
    else:
        perturb = {"perturb_func": _baseline_replacement(baseline)}
        if channel:
            network = torch.nn.Sequential(torch.nn.Flatten(), network).eval()
            x, a = x[:, None], a[:, None]
    call = {
        "x_batch": x,
        "y_batch": np.asarray(explanation.target),
        "a_batch": a,
        "channel_first": True,
        "softmax": False,
    }
    return network, perturb, call


def _quantus_step(pixels: int, channels: int) -> int:
    """PixelFlipping's `features_in_step` for images closest to whybox's IMAGE_STEPS steps:
    Quantus asserts that the step divides one channel's pixels, then counts its steps over
    every channel value (the attributions summed over channels, broadcast back, so that a
    pixel's values sort together)."""
    divisors = [d for d in range(1, pixels + 1) if pixels % d == 0]
    return min(divisors, key=lambda d: (abs(channels * pixels / d - quality.IMAGE_STEPS), -d))


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run()
    return time.perf_counter() - start, result


# --- the suite ------------------------------------------------------------------------------


def measure(
    workload: str,
    explainer: Explainer,
    model: Model,
    data: Any,
    rows: Any = None,
    mprt_every_layer: bool = True,
) -> list[QualityRecord]:
    """The explanation's time, then each metric's, whybox's and Quantus's, on `rows` of
    `data` (all where None)."""
    import quantus

    explainer.explain(model, data, rows=[0])  # warm-up: the first torch call pays more
    explain_s, explanation = _timed(lambda: explainer.explain(model, data, rows=rows))
    baseline, _ = quality.baseline_of(explanation, model, data)
    units = quality._units(explanation).shape[1]
    image = model.modality == "image"
    channels = explanation.data.shape[1] if image else 1
    step = _quantus_step(units, channels) if image else 1
    records: list[QualityRecord] = []

    def add(metric: str, ours: float, peer: str, peer_s: float | None, note: str) -> None:
        record = QualityRecord(
            f"{workload}: {metric}", metric, peer, ours, peer_s, None, None, "cpu"
        )
        record.explanation_s = explain_s
        ratios = f"whybox {record.ours_per_explanation:.2f}x the explanation"
        if record.peer_per_explanation is not None:
            ratios += f", Quantus {record.peer_per_explanation:.2f}x"
        record.note = f"{ratios}; {note}"
        records.append(record)
        peer_s = "" if record.peer_s is None else f", {record.peer} {record.peer_s:.2f} s"
        print(f"quality: {record.workload}: whybox {ours:.2f} s{peer_s}", flush=True)

    n = len(explanation.values)
    records.append(
        QualityRecord(
            f"{workload}: explanation",
            explanation.method,
            "none",
            explain_s,
            None,
            None,
            None,
            "cpu",
            note=f"{n:,} {'images' if image else 'rows'}, {units:,} "
            f"{'pixels' if image else 'features'} each; {explanation.params.get('steps', '')}"
            f"{' steps' if 'steps' in explanation.params else ''}".rstrip("; "),
            explanation_s=explain_s,
        )
    )

    # The cheap metrics together, as whybox runs them by default.
    cheap_s, assessed = _timed(
        lambda: quality.assess(explanation, model, data, quality.CHEAP, seed=SEED)
    )
    scores = assessed.scores
    deletion_s = scores["deletion"].seconds + scores["insertion"].seconds

    # Deletion curves against PixelFlipping.
    network, perturb, call = _quantus_inputs(model, explanation, baseline)
    pixel_flipping = quantus.PixelFlipping(
        features_in_step=step, abs=False, normalise=False, disable_warnings=True, **perturb
    )
    curves_s, measured = _timed(lambda: quality.curves(model, explanation, baseline, orders=0))
    flipping_s, flipped = _timed(lambda: np.asarray(pixel_flipping(model=network, **call)))
    points = len(measured["steps"])
    quantus_steps = flipped.shape[1]
    orders = quality.RANDOM_ORDERS[model.modality]
    if image:
        removal = (
            f"whybox {points - 1} steps of {units / (points - 1):,.1f} pixels, Quantus "
            f"{quantus_steps} steps of {step:,} channel values ({step / channels:,.1f} pixels)"
        )
    else:
        removal = f"1 feature a step, {points - 1} steps"
    add(
        "deletion + insertion vs random orders",
        deletion_s,
        "quantus.PixelFlipping",
        flipping_s,
        f"{removal}; whybox {2 * (1 + orders)} curves a row (both directions, attribution "
        f"order + {orders} random orders), Quantus 1; whybox's seconds as timed in assess",
    )
    add(
        "deletion + insertion curves, attribution order only",
        curves_s,
        "quantus.PixelFlipping",
        flipping_s,
        f"{removal}; whybox 2 curves a row (both directions), Quantus 1 (deletion)",
    )

    # Faithfulness correlation.
    runs, subset = quality.CORRELATION_RUNS, scores["faithfulness_correlation"].details["subset"]
    network, perturb, call = _quantus_inputs(model, explanation, baseline, channel=True)
    correlation = quantus.FaithfulnessCorrelation(
        nr_runs=runs,
        subset_size=channels * subset,
        similarity_func=quantus.similarity_func.correlation_pearson,
        abs=False,
        normalise=False,
        return_aggregate=False,
        disable_warnings=True,
        **perturb,
    )
    correlation_s, _ = _timed(lambda: correlation(model=network, **call))
    add(
        "faithfulness correlation",
        scores["faithfulness_correlation"].seconds,
        "quantus.FaithfulnessCorrelation",
        correlation_s,
        f"{runs} random subsets a row of {subset} "
        + (
            f"pixels (whybox, all channels) or {channels * subset} channel values "
            "(Quantus: it draws values)"
            if image
            else "features"
        )
        + "; whybox's seconds as timed in assess",
    )
    add(
        "assess(CHEAP): deletion, insertion, faithfulness correlation, infidelity",
        cheap_s,
        "quantus.PixelFlipping + FaithfulnessCorrelation",
        flipping_s + correlation_s,
        f"infidelity {scores['infidelity'].seconds:.2f} s of whybox's; Quantus's Infidelity "
        "not run",
    )

    # Max-sensitivity.
    samples = quality.NOISE_SAMPLES
    radius = quality.SENSITIVITY_RADIUS
    ours_s, _ = _timed(
        lambda: quality.max_sensitivity(
            explainer, model, data, explanation, samples=samples, seed=SEED
        )
    )
    if image:
        noise: dict = {"lower_bound": radius}
    else:
        scale = quality._noise_scale(model, data, explanation) * radius
        noise = {"perturb_func": _scaled_uniform(scale, SEED)}
    sensitivity = quantus.MaxSensitivity(
        nr_samples=samples,
        abs=False,
        normalise=False,
        return_nan_when_prediction_changes=False,
        disable_warnings=True,
        **noise,
    )
    explain_func = _explain_func(explainer, model, data)
    x, y = np.array(explanation.data), np.asarray(explanation.target)
    peer_s, _ = _timed(
        lambda: sensitivity(
            model=model.module,
            x_batch=x,
            y_batch=y,
            a_batch=None,
            explain_func=explain_func,
            channel_first=True,
            softmax=False,
        )
    )
    add(
        "max-sensitivity",
        ours_s,
        "quantus.MaxSensitivity",
        peer_s,
        f"{samples} noisy copies a row, uniform within {radius:g} "
        f"{'a pixel' if image else 'of each feature’s spread'}; both explain {samples + 1}x",
    )

    # Randomisation against MPRT.
    ours_s, score = _timed(
        lambda: quality.randomisation(explainer, model, data, explanation, seed=SEED)
    )
    layers = score.details["layers"]
    stages = len(score.details["cascade"])

    def mprt(skip: bool) -> float:
        metric = quantus.MPRT(
            layer_order="top_down",
            seed=SEED,
            similarity_func=quantus.similarity_func.correlation_spearman,
            abs=True,
            normalise=False,
            skip_layers=skip,
            disable_warnings=True,
        )
        seconds, _ = _timed(
            lambda: metric(
                model=model.module,
                x_batch=x,
                y_batch=y,
                a_batch=np.array(explanation.values),
                explain_func=explain_func,
                channel_first=True,
                softmax=False,
            )
        )
        return seconds

    cascade = f"whybox explains again at {stages} of the {layers} layers' cascade"
    add(
        "randomisation",
        ours_s,
        "quantus.MPRT skip_layers=True",
        mprt(True),
        f"{cascade}; Quantus at the original and the fully randomised network (2x)",
    )
    if mprt_every_layer:
        add(
            "randomisation",
            ours_s,
            "quantus.MPRT, every layer",
            mprt(False),
            f"{cascade}; Quantus at the original network and after each layer it "
            "re-initialises (all modules with reset_parameters)",
        )
    return records


def quality_suite(
    n_images: int = 32,
    side: int = 224,
    depth: int = 18,
    rows: int = 1000,
    classes: int = 1000,
    ig_steps: int | None = None,
    mprt_every_layer: bool = True,
) -> list[QualityRecord]:
    """Both workloads: the ResNet's images with saliency (pixels removed in the most
    steps up to 20 that divide them), then the credit MLP's rows with integrated
    gradients (`ig_steps`: whybox's default where None)."""
    model, images, workload = resnet_workload(depth, n_images, side, classes)
    records = measure(workload, Saliency(), model, images, None, mprt_every_layer)
    model, data, chosen = credit_workload(rows)
    explainer = IntegratedGradients() if ig_steps is None else IntegratedGradients(steps=ig_steps)
    steps = explainer.explain(model, data, rows=[0]).params["steps"]
    workload = f"credit MLP, {len(chosen):,} rows, integrated-gradients ({steps} steps)"
    records += measure(workload, explainer, model, data, chosen, mprt_every_layer)
    print(ratios_table(records))
    return records


def ratios_table(records: list[Record]) -> str:
    """The comparison as a compact Markdown table: times and both ratios."""
    lines = [
        "| workload | whybox | Quantus | whybox s | Quantus s | Quantus / whybox "
        "| whybox / explanation | Quantus / explanation |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]

    def number(value: float | None, spec: str) -> str:
        return "" if value is None or not math.isfinite(value) else f"{value:{spec}}"

    for r in records:
        per = r if isinstance(r, QualityRecord) else None
        lines.append(
            f"| {r.workload.split(': ', 1)[0]} | {r.ours} | {r.peer} | {r.ours_s:.3f} "
            f"| {number(r.peer_s, '.3f')} "
            f"| {number(r.speedup, '.2f')} "
            f"| {number(per.ours_per_explanation if per else None, '.2f')} "
            f"| {number(per.peer_per_explanation if per else None, '.2f')} |"
        )
    return "\n".join(lines)
