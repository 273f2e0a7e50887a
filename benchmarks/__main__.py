"""`python -m benchmarks [--quick] [--json FILE]`: whybox vs the library a user would call.

Each workload runs whybox and its peer in this process, on the same model, data and
device, and prints time, throughput, error against an exact reference where one exists,
and the speedup. A Markdown table per machine goes to benchmarks/results/. Timings never
gate a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from explainers.gradients import IntegratedGradients
from explainers.shapley import ExactShapley, TreeShap
from model_zoo import demos
from model_zoo.architectures import ResNet
from model_zoo.images import ImageSet
from model_zoo.wrap import wrap_torch

RESULTS = Path(__file__).with_name("results")


@dataclass
class Record:
    workload: str
    ours: str
    peer: str
    ours_s: float
    peer_s: float
    speedup: float
    ours_error: float | None
    peer_error: float | None
    device: str


def timed(fn: Callable[[], np.ndarray], repeat: int = 3) -> tuple[float, np.ndarray]:
    """Best wall time of `repeat` runs (after one warm-up) and the last result."""
    result = fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def demo_trees(rows: int) -> list[Record]:
    """The demo finance tree model: whybox tree-shap vs shap.TreeExplainer and XGBoost itself."""
    import shap
    import xgboost

    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    data.frame = data.frame.sample(rows, replace=rows > len(data), random_state=0).reset_index(
        drop=True
    )
    booster, X = model.native, data.values
    ours_s, ours = timed(lambda: TreeShap().explain(model, data).values)
    tree_explainer = shap.TreeExplainer(booster)
    shap_s, reference = timed(lambda: tree_explainer.shap_values(X))
    native_s, native = timed(
        lambda: booster.predict(
            xgboost.DMatrix(X, feature_names=booster.feature_names), pred_contribs=True
        )[:, :-1]
    )
    workload = f"credit-xgboost tree SHAP, {rows:,} rows"
    return [
        Record(
            workload,
            "tree-shap",
            "shap.TreeExplainer",
            ours_s,
            shap_s,
            shap_s / ours_s,
            float(np.abs(ours - reference).max()),
            0.0,
            "cpu",
        ),
        Record(
            workload,
            "tree-shap",
            "xgboost pred_contribs",
            ours_s,
            native_s,
            native_s / ours_s,
            float(np.abs(ours - native).max()),
            0.0,
            "cpu",
        ),
    ]


def demo_exact(rows: int, background: int = 50) -> list[Record]:
    """Exact Shapley on the demo finance MLP (13 features): whybox vs shap.ExactExplainer."""
    import shap

    model = demos.resolve_model("demo:credit-mlp")
    data = demos.resolve_data("demo:credit", model)
    subset = data.frame.iloc[:rows]
    reference_rows = data.background(background, seed=0)
    explainer = ExactShapley(background=background, output_space="margin")
    ours_s, ours = timed(lambda: explainer.explain(model, data, rows=range(rows)).values, repeat=1)
    masker = shap.maskers.Independent(reference_rows, max_samples=background)
    peer = shap.ExactExplainer(lambda X: model.predict(X, "margin")[:, 1], masker)
    peer_s, reference = timed(lambda: peer(subset.to_numpy()).values, repeat=1)
    return [
        Record(
            f"credit-mlp exact Shapley, {rows} rows, background {background}",
            "exact-shapley",
            "shap.ExactExplainer",
            ours_s,
            peer_s,
            peer_s / ours_s,
            float(np.abs(ours - reference).max()),
            0.0,
            "cpu",
        ),
    ]


def image_integrated_gradients(
    depth: int, side: int, images: int, steps: int, precision: str = "fp32"
) -> list[Record]:
    """Integrated Gradients on a ResNet (random weights: no downloads) vs the plain forward
    and backward passes it cannot do without: images x steps through the network in
    batches of 256, in the same precision. The speedup is our share of that throughput."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    network = ResNet(depth, num_classes=1000).eval()
    model = wrap_torch(network, (3, 0, 0), "logits", name=f"resnet{depth}").to(device)
    pixels = torch.rand(images, 3, side, side).numpy()
    data = ImageSet(pixels, np.zeros((images, side, side, 3), np.uint8), [""] * images, "")
    explainer = IntegratedGradients(steps=steps, device=device, precision=precision)
    ours_s, _ = timed(lambda: explainer.explain(model, data).values, repeat=1)
    module = model.torch_module("margin")
    batch = torch.rand(256, 3, side, side, device=device)
    targets = torch.zeros(256, dtype=torch.long, device=device)

    def plain() -> np.ndarray:
        for _ in range(-(-images * steps // len(batch))):
            inputs = batch.clone().requires_grad_()
            with torch.autocast(device, torch.bfloat16, enabled=precision == "bf16"):
                chosen = module(inputs).float().gather(1, targets[:, None])
            torch.autograd.grad(chosen.sum(), inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        return np.zeros(1)

    evaluations = -(-images * steps // len(batch)) * len(batch)
    peer_s, _ = timed(plain, repeat=1)
    peer_s *= images * steps / evaluations
    return [
        Record(
            f"ResNet-{depth} {side}x{side}, {images} images x {steps} steps, {precision}",
            "integrated-gradients",
            "forward+backward only",
            ours_s,
            peer_s,
            peer_s / ours_s,
            None,
            None,
            device,
        )
    ]


def image_suite(quick: bool) -> list[Record]:
    if torch.cuda.is_available():
        return image_integrated_gradients(50, 224, 32, 256) + image_integrated_gradients(
            50, 224, 32, 256, "bf16"
        )
    return image_integrated_gradients(18, 64, 2 if quick else 8, 32)


def table(records: list[Record]) -> str:
    lines = [
        "| workload | whybox | peer | whybox s | peer s | speedup | max abs diff to peer |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in records:
        lines.append(
            f"| {r.workload} | {r.ours} | {r.peer} | {r.ours_s:.3f} | {r.peer_s:.3f} | "
            f"{r.speedup:.2f}x | {'' if r.ours_error is None else f'{r.ours_error:.2g}'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="a reduced CPU suite")
    parser.add_argument("--json", type=Path, help="also write the records as a JSON list")
    parser.add_argument("--only", choices=("trees", "exact", "images"), help="one workload")
    args = parser.parse_args()
    suites = {
        "trees": lambda: demo_trees(1_000) + ([] if args.quick else demo_trees(100_000)),
        "exact": lambda: demo_exact(5 if args.quick else 20),
        "images": lambda: image_suite(args.quick),
    }
    records = [r for name, run in suites.items() if args.only in (None, name) for r in run()]
    header = f"Machine: {machine()}, Python {platform.python_version()}, torch {torch.__version__}"
    text = f"{header}\n\n{table(records)}\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-{args.only}" if args.only else ""
    (RESULTS / f"{machine().replace(' ', '_').replace(',', '')}{suffix}.md").write_text(text)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in records], indent=2))


if __name__ == "__main__":
    main()
