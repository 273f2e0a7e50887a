"""Model-agnostic Shapley values on tabular torch MLPs: whybox vs SHAP and Captum.

The MLPs for 12 and 40 features have block-diagonal weights: each block of 4 features
feeds its own hidden units, so the network is a sum of small networks, each with
interactions inside its block. Interventional Shapley values split over such a sum, and a
feature's value depends only on its block's 16 coalitions (the other blocks add the same
constant to every coalition). So exact values are known for 40 features as well as for 12,
computed here in float64 by the textbook formula, independently of whybox's engine.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from benchmarks.common import (
    Record,
    device,
    forward_seconds_per_row,
    max_abs,
    race,
    relative_error,
)
from whybox.explainers.sampling import KernelShap, PermutationShap
from whybox.explainers.shapley import ExactShapley, exact_model_rows
from whybox.explainers.testing import make_dataset
from whybox.model_zoo import Dataset, Model, demos
from whybox.model_zoo.architectures import MLP
from whybox.model_zoo.wrap import wrap_torch

BLOCK = 4
BLOCK_WIDTH = 16
"""Hidden units per block in each of the MLP's two hidden layers."""


def block_mlp(n_features: int, seed: int = 0) -> Model:
    """A binary-classifier MLP (random weights) that is a sum of networks on 4-feature blocks."""
    torch.manual_seed(seed)
    width = n_features // BLOCK * BLOCK_WIDTH
    network = MLP(n_features, 1, (width, width)).eval()
    first, second, _ = (m for m in network.layers if isinstance(m, torch.nn.Linear))
    inputs, hidden = torch.arange(n_features) // BLOCK, torch.arange(width) // BLOCK_WIDTH
    with torch.no_grad():
        first.weight *= hidden[:, None] == inputs[None, :]
        second.weight *= hidden[:, None] == hidden[None, :]
    return wrap_torch(network, n_features, "logit", name=f"block-mlp-{n_features}").to(device())


def gaussian_data(n_features: int, rows: int = 500, seed: int = 0) -> Dataset:
    frame = pd.DataFrame(np.random.default_rng(seed).normal(size=(rows, n_features)))
    frame.columns = [f"x{i}" for i in range(n_features)]
    return make_dataset(frame)


def block_exact(model: Model, X: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Exact interventional Shapley values of the positive class's margin, in float64."""
    module = copy.deepcopy(model.torch_module("margin")).double().cpu()
    n_rows, d = X.shape
    coalitions = np.array(list(itertools.product([False, True], repeat=BLOCK)))
    # Coalition c holds block feature i when bit (BLOCK - 1 - i) of c is set.
    inputs = np.broadcast_to(background, (n_rows, d // BLOCK, len(coalitions), *background.shape))
    inputs = inputs.copy()
    for block in range(d // BLOCK):
        columns = slice(block * BLOCK, (block + 1) * BLOCK)
        inputs[:, block, ..., columns] = np.where(
            coalitions[None, :, None, :], X[:, None, None, columns], background[:, columns]
        )
    with torch.inference_mode():
        out = module(torch.from_numpy(inputs.reshape(-1, d)))[:, 1].numpy()
    v = out.reshape(n_rows, d // BLOCK, len(coalitions), len(background)).mean(axis=3)
    sizes = coalitions.sum(axis=1)
    weight = np.array(
        [math.factorial(s) * math.factorial(BLOCK - s - 1) for s in range(BLOCK)]
    ) / math.factorial(BLOCK)
    values = np.empty((n_rows, d // BLOCK, BLOCK))
    for i in range(BLOCK):
        without = np.flatnonzero(~coalitions[:, i])
        gains = v[:, :, without + 2 ** (BLOCK - 1 - i)] - v[:, :, without]
        values[:, :, i] = gains @ weight[sizes[without]]
    return values.reshape(n_rows, d)


def margin_function(model: Model) -> Callable[[np.ndarray], np.ndarray]:
    """What a user hands SHAP: numpy rows in, the positive class's margin out."""
    module = model.torch_module("margin")

    def f(X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = torch.from_numpy(np.array(X, dtype=np.float32)).to(model.device)
            return module(inputs)[:, 1].double().cpu().numpy()

    return f


def _exact_records(
    workload: str,
    model: Model,
    data: Dataset,
    rows: int,
    background: int,
    repeat: int,
    reference: np.ndarray | None,
) -> list[Record]:
    """exact-shapley vs shap.ExactExplainer on the first `rows` rows; errors against
    `reference` (max abs), or against SHAP's values where there is none."""
    import shap

    X, reference_rows = data.values[:rows], data.background(background, seed=0)
    ours = ExactShapley(background=background, output_space="margin", device=model.device)
    masker = shap.maskers.Independent(reference_rows, max_samples=background)
    peer = shap.ExactExplainer(margin_function(model), masker)
    timings = race(
        {
            "ours": lambda: ours.explain(model, data, rows=range(rows)).values,
            "peer": lambda: peer(X, silent=True).values,
        },
        repeat,
    )
    (ours_s, values), (peer_s, peer_values) = timings["ours"], timings["peer"]
    model_rows = exact_model_rows(X, reference_rows)
    per_row = forward_seconds_per_row(model.torch_module("margin"), X.shape[1], model_rows)
    exact = peer_values if reference is None else reference
    return [
        Record(
            workload,
            "exact-shapley",
            "shap.ExactExplainer",
            ours_s,
            peer_s,
            max_abs(values, exact),
            None if reference is None else max_abs(peer_values, exact),
            model.device,
            efficiency=model_rows * per_row / ours_s,
            note=f"error: max abs vs {'SHAP' if reference is None else 'exact float64'}; "
            f"{model_rows / rows:,.0f} model rows a row (all coalitions: "
            f"{2 ** X.shape[1] * background:,})",
        )
    ]


def exact_block(
    n_features: int = 12, rows: int = 5, background: int = 50, repeat: int = 3
) -> list[Record]:
    """exact-shapley vs SHAP's ExactExplainer on the block MLP, against exact values."""
    model, data = block_mlp(n_features), gaussian_data(n_features)
    reference = block_exact(model, data.values[:rows], data.background(background, seed=0))
    workload = f"MLP {n_features} features, {rows} rows, background {background}"
    return _exact_records(workload, model, data, rows, background, repeat, reference)


def exact_credit(rows: int = 5, background: int = 50, repeat: int = 3) -> list[Record]:
    """The demo credit MLP (13 features, real data: many values repeat between rows)."""
    model = demos.resolve_model("demo:credit-mlp").to(device())
    data = demos.resolve_data("demo:credit", model)
    workload = f"credit-mlp, 13 features, {rows} rows, background {background}"
    return _exact_records(workload, model, data, rows, background, repeat, None)


def sampled_block(
    n_features: int = 40,
    rows: int = 4,
    background: int = 50,
    permutations: int = 16,
    repeat: int = 3,
) -> list[Record]:
    """permutation-shap vs SHAP's Permutation and Kernel explainers and Captum's
    ShapleyValueSampling, and kernel-shap vs SHAP's Kernel explainer, each given the same
    model rows per explained row: the peers `budget` coalitions, each on every background
    row; permutation-shap `permutations` orders per background row, each walked with that
    row alone. permutation-shap also runs on a quarter of those model rows, the test of
    "faster at equal or lower error"."""
    import shap
    from captum.attr import ShapleyValueSampling

    model, data = block_mlp(n_features), gaussian_data(n_features)
    X, reference_rows = data.values[:rows], data.background(background, seed=0)
    exact = block_exact(model, X, reference_rows)
    common = {"background": background, "output_space": "margin"}
    budget = 2 + 2 * permutations * (n_features - 1)
    assert permutations >= 8, "a quarter of the orders must still be 2 or more"
    quarter = f"permutation-shap, permutations={permutations // 4}"
    ours = {
        "permutation-shap": PermutationShap(permutations=permutations, **common),
        quarter: PermutationShap(permutations=permutations // 4, **common),
        "kernel-shap": KernelShap(samples=budget - 2, **common),
    }
    # Both samplers evaluate each of their coalitions on one background row per row.
    model_rows = {
        name: rows * background * explainer._coalitions_per_row(n_features, background)
        for name, explainer in ours.items()
    }
    f = margin_function(model)
    masker = shap.maskers.Independent(reference_rows, max_samples=background)
    permutation = shap.PermutationExplainer(f, masker, seed=0)
    kernel = shap.KernelExplainer(f, reference_rows)
    sampling = ShapleyValueSampling(model.torch_module("margin"))
    # Captum takes one baseline per input: pair the row with each background row, average.
    pairs, baselines = (
        torch.as_tensor(a, dtype=torch.float32, device=model.device)
        for a in (np.repeat(X, background, axis=0), np.tile(reference_rows, (rows, 1)))
    )

    def captum_values() -> np.ndarray:
        torch.manual_seed(0)
        values = sampling.attribute(
            pairs,
            baselines=baselines,
            target=1,
            n_samples=budget // n_features,
            perturbations_per_eval=n_features,
        )
        return values.reshape(rows, background, n_features).mean(dim=1).double().cpu().numpy()

    permutation(X[:1], max_evals=4 * n_features, silent=True)  # numba compiles on first use
    timings = race(
        {
            **{
                name: lambda e=explainer: e.explain(model, data, rows=range(rows)).values
                for name, explainer in ours.items()
            },
            "shap.PermutationExplainer": lambda: (
                permutation(X, max_evals=budget, silent=True).values
            ),
            "shap.KernelExplainer": lambda: kernel.shap_values(
                X, nsamples=budget, l1_reg=False, silent=True
            ),
            "captum ShapleyValueSampling": captum_values,
        },
        repeat,
    )
    per_row = forward_seconds_per_row(
        model.torch_module("margin"), n_features, max(model_rows.values())
    )
    workload = (
        f"MLP {n_features} features, {rows} rows, background {background}, "
        f"{budget * background:,} model rows a row"
    )
    shap_pairs = budget // (2 * n_features + 1)
    notes = {
        "shap.KernelExplainer": "l1_reg=False (the default keeps 10 features); ",
        "captum ShapleyValueSampling": f"{budget // n_features} permutations, "
        f"perturbations_per_eval={n_features}, one baseline per background row; ",
        quarter: f"whybox: {model_rows[quarter] // rows:,} model rows a row; ",
        # SHAP walks whole antithetic pairs, 2 d + 1 evaluations each, within max_evals.
        "shap.PermutationExplainer": f"SHAP: {shap_pairs} pairs of walks, "
        f"{shap_pairs * (2 * n_features + 1) * background:,} model rows a row; ",
    }
    pairings = [
        *(("permutation-shap", peer) for peer in list(timings)[len(ours) :]),
        (quarter, "shap.PermutationExplainer"),
        ("kernel-shap", "shap.KernelExplainer"),
    ]
    return [
        Record(
            workload,
            name,
            peer,
            timings[name][0],
            timings[peer][0],
            relative_error(timings[name][1], exact),
            relative_error(np.asarray(timings[peer][1]).reshape(exact.shape), exact),
            model.device,
            efficiency=model_rows[name] * per_row / timings[name][0],
            note=notes.get(peer, "")
            + notes.get(name, "")
            + "error: mean abs / mean abs exact value",
        )
        for name, peer in pairings
    ]
