"""Integrated Gradients on a converted ONNX CNN: whybox against Captum on the same network.

The network is shaped like a small OCR/text-line classifier (48 x 192 RGB input, four 3x3
convolutions, the first two max-pooled, global average pooling, a linear head over 37
characters; random weights), exported by torch's TorchScript exporter and loaded by whybox,
which converts the graph to torch. whybox's IntegratedGradients and Captum's (Gauss-Legendre,
the same steps, images, targets and black baseline; `internal_batch_size=32`, the hand-tuned
CPU batch of `benchmarks.images`) then run on that converted network, each run in a process of
its own, on CPU, so that each peak resident set (ru_maxrss) is its own. The resident set after
loading, before explaining, is the baseline; what the run added is the peak less it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import Record, max_abs
from whybox.explainers.memory import CPU_BUDGET_BYTES

SHAPE = (3, 48, 192)
CLASSES = 37
GIB = 2**30
CAPTUM_BATCH = 32  # benchmarks.images' hand-tuned CPU batch


def ocr_network() -> torch.nn.Module:
    """The benchmark's network, with the same random weights each time."""
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, CLASSES),
    ).eval()


def _images(count: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(count, *SHAPE)).astype(np.float32)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _side(side: str, path: str, count: int, steps: int, out: str) -> None:
    """One run in this process: explain, save the values to `out`, print the measures."""
    from captum.attr import IntegratedGradients as CaptumIG

    from whybox.explainers.gradients import IntegratedGradients
    from whybox.model_zoo import load_model
    from whybox.model_zoo.image_data import ImageSet

    model = load_model(Path(path), isolated=False)
    pixels = _images(count)
    baseline = _resident_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    if side == "whybox":
        images = ImageSet(pixels, np.zeros((count, *SHAPE[1:], 3), np.uint8), [""] * count, "")
        values = IntegratedGradients(steps=steps).explain(model, images).values
    else:
        network, inputs = model.torch_module(), torch.from_numpy(pixels)
        with torch.no_grad():
            targets = network(inputs).argmax(dim=1)
        values = (
            CaptumIG(network)
            .attribute(
                inputs,
                baselines=torch.zeros_like(inputs),
                target=targets,
                n_steps=steps,
                method="gausslegendre",
                internal_batch_size=CAPTUM_BATCH,
            )
            .detach()
            .numpy()
        )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    np.save(out, values)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "peak": peak, "baseline": baseline}))


def _run(side: str, path: Path, count: int, steps: int, out: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.onnx", side, str(path), str(count), str(steps)]
    cpu_only = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [*command, str(out)], capture_output=True, text=True, check=False, env=cpu_only
    )
    if done.returncode:
        raise RuntimeError(f"the {side} run failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def onnx_suite(count: int, steps: int, repeat: int = 1) -> list[Record]:
    """Both sides `repeat` times, interleaved; the best wall time of each, and its run's
    CPU time and memory (the peak over all runs)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ocr.onnx"
        torch.onnx.export(
            ocr_network(),
            (torch.zeros(1, *SHAPE),),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}},
            dynamo=False,
        )
        runs: dict[str, list[dict[str, float]]] = {"whybox": [], "captum": []}
        for _ in range(repeat):
            for side, measured in runs.items():
                measured.append(_run(side, path, count, steps, Path(tmp) / f"{side}.npy"))
        ours_values, peer_values = (np.load(Path(tmp) / f"{side}.npy") for side in runs)
    best = {side: min(measured, key=lambda m: m["wall"]) for side, measured in runs.items()}
    peak = {side: max(m["peak"] for m in measured) for side, measured in runs.items()}
    added = {side: peak[side] - best[side]["baseline"] for side in runs}
    ours, peer = best["whybox"], best["captum"]
    gib = {side: (peak[side] / GIB, added[side] / GIB) for side in runs}
    note = (
        "peak RSS whybox {:.2f} GiB, Captum {:.2f} GiB; added by the run {:.2f} vs {:.2f} GiB "
        "({:.2f}x; CPU budget {:.2f} GiB); CPU s {:.1f} vs {:.1f}; error: max abs vs Captum"
    ).format(
        gib["whybox"][0],
        gib["captum"][0],
        gib["whybox"][1],
        gib["captum"][1],
        added["whybox"] / added["captum"],
        CPU_BUDGET_BYTES / GIB,
        ours["cpu"],
        peer["cpu"],
    )
    return [
        Record(
            f"converted ONNX CNN 48x192, {count} images x {steps} steps",
            "integrated-gradients",
            f"captum internal_batch_size={CAPTUM_BATCH}",
            ours["wall"],
            peer["wall"],
            max_abs(ours_values, peer_values),
            0.0,
            "cpu",
            note=note,
        )
    ]


if __name__ == "__main__":
    side, path, count, steps, out = sys.argv[1:]
    _side(side, path, int(count), int(steps), out)
