"""Image attributions on a ResNet (random weights, random images: nothing is downloaded).

Each method runs through whybox, through Captum with its default settings and with
settings tuned by hand, and against the plain passes it cannot do without (the ceiling):
forward and backward over images x steps for Integrated Gradients, over the images for
Grad-CAM, forward only over images x (patches + 1) for occlusion, in batches of 256 on a GPU and 32
on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmarks.common import Record, device, max_abs, race
from whybox.explainers.base import Explainer
from whybox.explainers.feature_maps import GradCam
from whybox.explainers.gradients import IntegratedGradients
from whybox.explainers.memory import is_out_of_memory
from whybox.explainers.perturbation import Occlusion
from whybox.model_zoo import Model
from whybox.model_zoo.architectures import ResNet
from whybox.model_zoo.image_data import ImageSet
from whybox.model_zoo.wrap import wrap_torch


def hand_tuned_batch() -> int:
    """Images per network call a user would pick: 256 fill a GPU; on CPU, 32 keep more
    in the cache and ran faster than 256 on ResNet-18."""
    return 256 if device() == "cuda" else 32


def _plain_passes(
    module: torch.nn.Module, side: int, items: int, backward: bool, precision: str
) -> Callable[[], float]:
    """A run of `items` plain passes in whole batches of `hand_tuned_batch()`; it returns
    the share of its time that `items` passes take."""
    dev = device()
    batch = torch.rand(min(items, hand_tuned_batch()), 3, side, side, device=dev)
    targets = torch.zeros(len(batch), 1, dtype=torch.long, device=dev)
    calls = -(-items // len(batch))

    def run() -> float:
        for _ in range(calls):
            inputs = batch.clone().requires_grad_(backward)
            with (
                torch.set_grad_enabled(backward),
                torch.autocast(dev, torch.bfloat16, enabled=precision == "bf16"),
            ):
                chosen = module(inputs).float().gather(1, targets)
            if backward:
                torch.autograd.grad(chosen.sum(), inputs)
        return items / (calls * len(batch))

    return run


def _captum_or_none(run: Callable[[], Any]) -> Callable[[], Any]:
    """`run`, but once it has run out of memory (Captum's defaults can ask too much) it
    gives None at once: a retry would empty the GPU's memory cache again each time, and
    the methods timed next would pay to fill it."""
    failed = False

    def attempt() -> Any:
        nonlocal failed
        try:
            return None if failed else run()
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            failed = True
        # Out of the except clause, the traceback no longer holds the tensors: hand the
        # cached memory back, or the methods sized to free memory see too little.
        torch.cuda.empty_cache()
        return None

    return attempt


def _records(
    workload: str,
    model: Model,
    images: ImageSet,
    ours: Explainer,
    peers: dict[str, Callable[[], Any]],
    ceiling: Callable[[], float],
    repeat: int,
) -> list[Record]:
    """Our method against each Captum setting and the ceiling; errors are max abs
    differences to the values of Captum's first setting that ran."""
    # Captum first: a default that runs out of memory does so before anything is timed.
    timings = race(
        {**peers, "ours": lambda: ours.explain(model, images).values, "ceiling": ceiling},
        repeat,
    )
    ours_s, values = timings.pop("ours")
    ceiling_s, share = timings.pop("ceiling")
    reference = next((v for _, v in timings.values() if v is not None), None)
    ours_error = None if reference is None else max_abs(values, reference)
    records = [
        Record(
            workload,
            ours.name,
            peer,
            ours_s,
            None if peer_values is None else peer_s,
            ours_error,
            None if peer_values is None else max_abs(peer_values, reference),
            model.device,
            note="out of memory" if peer_values is None else "error: max abs vs Captum",
        )
        for peer, (peer_s, peer_values) in timings.items()
    ]
    ceiling = "forward only" if ours.name == "occlusion" else "forward+backward only"
    records.append(
        Record(workload, ours.name, ceiling, ours_s, ceiling_s * share, None, None, model.device)
    )
    return records


def random_images(
    model: Model, count: int, side: int
) -> tuple[ImageSet, torch.Tensor, torch.Tensor]:
    """`count` random images: as whybox takes them, as a tensor on the model's device, and
    the class the model predicts for each (the target every method explains)."""
    pixels = torch.rand(count, 3, side, side).numpy()
    images = ImageSet(pixels, np.zeros((count, side, side, 3), np.uint8), [""] * count, "")
    targets = model.predict(pixels, "margin").argmax(axis=1)
    return (
        images,
        torch.as_tensor(pixels, device=model.device),
        torch.as_tensor(targets, device=model.device),
    )


def image_suite(
    depth: int,
    side: int,
    n_images: int,
    steps: int,
    precision: str = "fp32",
    repeat: int = 3,
    window: int = 0,
) -> list[Record]:
    """Integrated Gradients and occlusion on `n_images` images, Grad-CAM on 8 times as
    many (one pass each), on one ResNet; occlusion's patch side `window` (0: side / 8)
    moves by half its side."""
    from captum import attr

    dev = device()
    torch.manual_seed(0)
    network = ResNet(depth, num_classes=1000).eval()
    model = wrap_torch(network, (3, 0, 0), "logits", name=f"resnet{depth}").to(dev)
    module = model.torch_module("margin")
    tuned = hand_tuned_batch()
    few, many = random_images(model, n_images, side), random_images(model, 8 * n_images, side)

    def captum(
        method: Any,
        batch: tuple[ImageSet, torch.Tensor, torch.Tensor],
        finish: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
        **kw: Any,
    ) -> Callable[[], np.ndarray | None]:
        _, inputs, targets = batch

        def run() -> np.ndarray:
            with torch.autocast(dev, torch.bfloat16, enabled=precision == "bf16"):
                values = finish(method.attribute(inputs, target=targets, **kw))
            return values.float().detach().cpu().numpy()

        return _captum_or_none(run)

    def describe(batch: tuple[ImageSet, torch.Tensor, torch.Tensor]) -> str:
        return f"ResNet-{depth} {side}x{side}, {len(batch[0])} images"

    gradients = attr.IntegratedGradients(module)
    records = _records(
        f"{describe(few)} x {steps} steps, {precision}",
        model,
        few[0],
        IntegratedGradients(steps=steps, precision=precision, output_space="margin"),
        {
            "captum default": captum(gradients, few, n_steps=steps),
            f"captum internal_batch_size={tuned}": captum(
                gradients, few, n_steps=steps, internal_batch_size=tuned
            ),
        },
        _plain_passes(module, side, n_images * steps, True, precision),
        repeat,
    )
    upsample = attr.LayerAttribution.interpolate
    records += _records(
        f"{describe(many)}, {precision}",
        model,
        many[0],
        GradCam(precision=precision, output_space="margin"),
        {
            "captum": captum(
                attr.LayerGradCam(module, network.layer4),
                many,
                lambda coarse: upsample(coarse, (side, side), "bilinear").expand_as(many[1]),
                relu_attributions=True,
            )
        },
        _plain_passes(module, side, 8 * n_images, True, precision),
        repeat,
    )
    window = window or max(3, side // 8)
    stride = window // 2
    patches = ((side - window) // stride + 1) ** 2
    occlusion = attr.Occlusion(module)
    geometry = {"sliding_window_shapes": (3, window, window), "strides": (3, stride, stride)}
    with torch.no_grad():
        records += _records(
            f"{describe(few)}, {patches} patches of {window}x{window}, {precision}",
            model,
            few[0],
            Occlusion(precision=precision, output_space="margin", window=window, stride=stride),
            {
                "captum default": captum(occlusion, few, **geometry),
                f"captum perturbations_per_eval={tuned}": captum(
                    occlusion, few, perturbations_per_eval=tuned, **geometry
                ),
            },
            _plain_passes(module, side, n_images * (patches + 1), False, precision),
            repeat,
        )
    return records
