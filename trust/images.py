"""How typical is this image of the images the model learned from? A score per image,
calibrated against reference images the scorer never saw, next to the model's confidence.

A classifier is as confident on noise, a blank frame or a letter as on a digit: softmax
confidence says which class wins, never whether the input is one the classes describe.
Typicality asks the second question in the network's own terms: an image is embedded in
its penultimate features (the input of its last linear layer, what the classes are read
from), and its score is the mean distance to the `k` nearest reference images there.

The features are L2-normalised, so distance compares the direction of a feature vector
(which patterns the network found, in what proportion) and not its length (how strongly,
which follows contrast and amount of ink). Standardising each feature by the reference SD
instead, as the tables' typicality does, let uniform noise pass as digits much more often
on the digits demo: it magnifies the features the reference barely uses, where noise
differs little from anything. An image whose features are all zero is 1 from every
reference image, as far as a unit vector can be from an orthogonal one.

Calibration is conformal, as for rows (`whybox.trust.typicality`): an image's typicality
is the share of held-out reference images at least as far from the reference as it is
(plus one, over their number plus one). It is uniform for an image drawn like the
reference, so the reference should be images like those the model will meet in use,
split at random: images the model was trained on, or better a validation set it never
saw. A population the reference does not cover (another scanner, other writers) is
flagged more often than the level says, which is the point of the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from whybox.model_zoo import Model, WhyboxError
from whybox.model_zoo.image_data import ImageSet
from whybox.model_zoo.lazy import LazyModule
from whybox.trust.typicality import (
    CALIBRATION_ROWS,
    MIN_REFERENCE_ROWS,
    NEIGHBOURS,
    calibrated,
    nearest,
    squared_norms,
)

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

INDEX_IMAGES = 20_000
"""Reference images searched for neighbours (a seeded sample): each costs a forward pass,
so fewer than the tables' rows."""
BATCH_IMAGES = 256
LINEAR_OPS = ("Gemm", "MatMul")  # an ONNX graph's linear layers, converted to torch nodes


@dataclass(frozen=True)
class ScoredImage:
    """One image: `typicality` (the share of reference images as unusual, 0..1),
    `distance` (its score), and what the model makes of it: the `predicted` class and its
    softmax probability, `confidence` (None for a regression model)."""

    typicality: float
    distance: float
    confidence: float | None
    predicted: str | None

    @property
    def reasons(self) -> list[str]:
        """What the model makes of the image all the same, in words: its confidence does
        not warn of an image unlike the reference."""
        if self.confidence is None:
            return []
        return [f"the model still gives class {self.predicted} {100 * self.confidence:.0f} %"]


class ImageTypicality:
    """Scores images against a reference in `model`'s penultimate features; fit once,
    score any number of image sets of the model's input shape.

    `reference` holds images like those the model learned from (at least 50); `neighbours`
    is k; the neighbours are searched among at most `index_images` of them and the scores
    calibrated on `calibration_images` others (at most a fifth), both drawn with `seed`;
    the network runs on `batch_size` images at a time on `model.device`.
    """

    def __init__(
        self,
        model: Model,
        reference: ImageSet,
        neighbours: int = NEIGHBOURS,
        index_images: int = INDEX_IMAGES,
        calibration_images: int = CALIBRATION_ROWS,
        seed: int = 0,
        batch_size: int = BATCH_IMAGES,
    ) -> None:
        if model.modality != "image":
            raise WhyboxError(
                f"image typicality takes an image model; {model.name!r} takes rows "
                "(use whybox.trust.typicality.Typicality for a table)"
            )
        network = model.torch_module("probability" if _classifies(model) else "value")
        if network is None:
            raise WhyboxError(
                f"image typicality reads the network's own features, and this {model.format} "
                "model has no network whybox can run layer by layer; give it as PyTorch "
                "weights (safetensors) or an ONNX graph whybox converts"
            )
        if len(reference) < MIN_REFERENCE_ROWS:
            raise WhyboxError(
                f"the reference has {len(reference)} image(s); typicality needs at least "
                f"{MIN_REFERENCE_ROWS} (more make it finer: one in a hundred needs 100)"
            )
        if batch_size < 1:
            raise WhyboxError(f"the batch size must be at least 1 (got {batch_size})")
        self.model, self.network, self.batch_size = model, network, batch_size
        self.reference = reference
        self._check_shape(reference)
        self.layer, self.layer_name = _penultimate(model, network, reference.images[:1])
        order = np.random.default_rng(seed).permutation(len(reference))
        held = min(calibration_images, len(reference) // 5)
        calibration, indexed = order[:held], np.sort(order[held:][:index_images])
        self.index = self._embed(reference.images, indexed)[0]
        self._index_norms = squared_norms(self.index)
        self.neighbours = min(neighbours, len(self.index))
        self.calibration = np.sort(self._distances(self._embed(reference.images, calibration)[0]))

    @property
    def method(self) -> str:
        """The score in one line, for a report or a run record."""
        return (
            f"mean distance to the {self.neighbours} nearest of {len(self.index):,} reference "
            f"images in the network's penultimate features, the {self.index.shape[1]} inputs "
            f"of its layer {self.layer_name}, L2-normalised; calibrated on "
            f"{len(self.calibration):,} held-out reference images"
        )

    def score(self, images: ImageSet) -> list[ScoredImage]:
        """Every image of `images` (of the model's input shape, as `load_images` makes
        them): its typicality, distance, and the model's predicted class and confidence."""
        self._check_shape(images)
        points, outputs = self._embed(images.images)
        distances = self._distances(points)
        typicality = calibrated(self.calibration, distances)
        if _classifies(self.model):
            names = self.model.output_names
            predicted = [names[i] for i in outputs.argmax(axis=1)]
            confidence = outputs.max(axis=1).tolist()
        else:
            predicted = confidence = [None] * len(points)
        return [
            ScoredImage(
                typicality=float(typicality[i]),
                distance=float(distances[i]),
                confidence=confidence[i],
                predicted=predicted[i],
            )
            for i in range(len(points))
        ]

    def _check_shape(self, images: ImageSet) -> None:
        wanted = tuple(self.model.input_shape)
        shape = tuple(images.images.shape[1:])
        if len(shape) != len(wanted) or any(
            side != want for side, want in zip(shape, wanted, strict=False) if want
        ):
            shown = "x".join(str(side or "any") for side in wanted)
            raise WhyboxError(
                f"{images.name!r} has images of shape {'x'.join(map(str, shape))} (CxHxW) and "
                f"the model takes {shown}; load them for this model (load_images)"
            )

    def _embed(
        self, images: np.ndarray, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The penultimate features of `images[rows]` (all where None), each scaled to
        length 1 (float64), and the network's outputs, `batch_size` images at a time: only
        a batch is ever copied, so a large reference of large images needs no second copy."""
        rows = np.arange(len(images)) if rows is None else rows
        # a graph exported for a fixed batch runs in slices of it: one slice a pass, so the
        # hooked layer sees this batch once (padded rows after it)
        fixed = getattr(self.model.module, "fixed_batch", None)
        step = fixed or self.batch_size
        captured: list[torch.Tensor | None] = []

        def keep(module: object, inputs: tuple, output: object) -> None:
            captured.append(inputs[0] if inputs and torch.is_tensor(inputs[0]) else None)

        features, outputs = [], []
        handle = self.layer.register_forward_hook(keep)
        try:
            for start in range(0, len(rows), step):
                batch = np.require(images[rows[start : start + step]], np.float32, "CW")
                captured.clear()
                with torch.no_grad():
                    out = self.network(torch.from_numpy(batch).to(self.model.device))
                # a layer run more than once a pass is read at its last run, nearest the outputs
                found = captured[-1] if captured else None
                if found is None or found.shape[0] not in {len(batch), fixed}:
                    raise WhyboxError(
                        f"{self.layer_name} did not receive one feature vector per image; "
                        "image typicality needs a network whose last layer takes (images, "
                        "features)"
                    )
                found = found[: len(batch)].reshape(len(batch), -1)
                features.append(found.double().cpu().numpy())
                outputs.append(out.double().cpu().numpy())
        finally:
            handle.remove()
        width = features[0].shape[1] if features else 0
        points = np.concatenate(features) if features else np.empty((0, width))
        lengths = np.linalg.norm(points, axis=1, keepdims=True)
        points = np.divide(points, lengths, out=np.zeros_like(points), where=lengths > 0)
        return points, (np.concatenate(outputs) if outputs else np.empty((0, 0)))

    def _distances(self, points: np.ndarray) -> np.ndarray:
        return nearest(points, self.index, self.neighbours, index_norms=self._index_norms)[0]


def _classifies(model: Model) -> bool:
    return model.task == "classification" and "probability" in model.output_spaces


def _penultimate(
    model: Model, network: torch.nn.Module, sample: np.ndarray
) -> tuple[torch.nn.Module, str]:
    """The layer whose input is the embedding, and its name: the last linear layer to run
    in a forward pass over `sample` (a torch Linear, or a converted ONNX Gemm or MatMul),
    else the last layer to run, whose input is what the outputs are made from."""
    names = {module: name for name, module in model.module.named_modules() if name}
    order: list[torch.nn.Module] = []
    handles = [
        module.register_forward_hook(lambda module, inputs, output: order.append(module))
        for module in names
        if not any(True for _ in module.children())
    ]
    try:
        with torch.no_grad():
            network(torch.from_numpy(np.require(sample, np.float32, "CW")).to(model.device))
    finally:
        for handle in handles:
            handle.remove()
    linear = [
        m
        for m in order
        if isinstance(m, torch.nn.Linear) or getattr(m, "op_type", None) in LINEAR_OPS
    ]
    if not (linear or order):
        raise WhyboxError(
            "image typicality reads the network's features at the input of its last layer, "
            "and this network runs no layers whybox can hook; give it as a module built of "
            "layers (its classifier a torch.nn.Linear)"
        )
    layer = (linear or order)[-1]
    name = getattr(layer, "onnx_names", (names[layer],))[0]
    return layer, f"{name} ({getattr(layer, 'op_type', type(layer).__name__)})"
