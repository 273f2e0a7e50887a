"""Per-image typicality on the digits CNN: uniform on held-out digits drawn like the
reference, low on noise, blank frames and letters, which the CNN calls digits with high
confidence; and the same scores however the images are batched."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont
from scipy import stats
from sklearn.metrics import roc_auc_score

from whybox.model_zoo import Model, WhyboxError
from whybox.model_zoo.demos import DIGIT_SIDE, DIGITS_SHOWN, _digits, resolve_model
from whybox.model_zoo.image_data import ImageSet, images_to_zip, load_images
from whybox.model_zoo.onnx_graph import FixedBatch
from whybox.trust.images import ImageTypicality

SHAPE = (1, DIGIT_SIDE, DIGIT_SIDE)


def image_set(pixels: np.ndarray, name: str) -> ImageSet:
    """uint8 (n, 32, 32) images as whybox reads an uploaded zip of PNGs."""
    names = [f"{name}_{i:04d}" for i in range(len(pixels))]
    return load_images(images_to_zip(pixels, names), SHAPE, name=f"{name}.zip")


def letters() -> np.ndarray:
    """A to Z white on black, made as the digits were: drawn to fill a 32x32 frame, counted
    into 8x8 blocks of 16 grey levels, enlarged bilinearly back to 32x32."""
    font = ImageFont.load_default(size=28)
    drawn = []
    for letter in string.ascii_uppercase:
        image = Image.new("L", (DIGIT_SIDE, DIGIT_SIDE), 0)
        draw = ImageDraw.Draw(image)
        left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
        at = ((DIGIT_SIDE - right - left) / 2, (DIGIT_SIDE - bottom - top) / 2)
        draw.text(at, letter, fill=255, font=font)
        drawn.append(np.asarray(image, dtype=np.float32) / 255)
    blocks = torch.nn.functional.interpolate(
        torch.tensor(np.stack(drawn))[:, None], size=(8, 8), mode="area"
    )
    blocks = (blocks * 16).round() / 16
    large = torch.nn.functional.interpolate(
        blocks, size=(DIGIT_SIDE, DIGIT_SIDE), mode="bilinear", align_corners=False
    )
    return (large[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def strange_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "noise": rng.integers(0, 256, (100, DIGIT_SIDE, DIGIT_SIDE), dtype=np.uint8),
        "blank": np.stack([np.full((DIGIT_SIDE, DIGIT_SIDE), v, np.uint8) for v in (0, 255)]),
        "letters": letters(),
    }


@pytest.fixture(scope="module")
def model() -> Model:
    return resolve_model("demo:digits-cnn")


@pytest.fixture(scope="module")
def digits() -> tuple[ImageSet, ImageSet]:
    """The digits the CNN was trained on, and the 200 it never saw."""
    pixels, _ = _digits()
    return image_set(pixels[:-DIGITS_SHOWN], "trained"), image_set(pixels[-DIGITS_SHOWN:], "unseen")


@pytest.fixture(scope="module")
def scorer(model, digits) -> ImageTypicality:
    return ImageTypicality(model, digits[0])


def test_digits_drawn_like_the_reference_get_uniform_typicality(model) -> None:
    """A random 200 of the training digits against the other 1,397: about 10 % at or below
    0.1, half at or below 0.5, and indistinguishable from uniform."""
    pixels, _ = _digits()
    order = np.random.default_rng(1).permutation(len(pixels) - DIGITS_SHOWN)
    reference = image_set(pixels[np.sort(order[200:])], "reference")
    held_out = image_set(pixels[np.sort(order[:200])], "held-out")
    scorer = ImageTypicality(model, reference)
    typicality = np.array([s.typicality for s in scorer.score(held_out)])
    print({level: float(np.mean(typicality <= level)) for level in (0.05, 0.1, 0.5)})
    for level in (0.1, 0.5):
        # the share is binomial twice over: in the 200 scored and in the 319 calibrating
        variance = level * (1 - level) * (1 / len(typicality) + 1 / len(scorer.calibration))
        spread = 3 * np.sqrt(variance)
        assert abs(np.mean(typicality <= level) - level) <= spread, level
    assert stats.kstest(typicality, "uniform").pvalue > 0.001


def test_noise_blanks_and_letters_are_flagged_though_the_model_is_confident(scorer, digits) -> None:
    """Against the digits the CNN never saw: typicality separates each kind of non-digit
    (AUROC at least 0.95, and above confidence's), while the CNN gives half or more of each
    over 90 % confidence."""
    unseen = scorer.score(digits[1])
    digit_typicality = np.array([s.typicality for s in unseen])
    digit_confidence = np.array([s.confidence for s in unseen])
    for kind, pixels in strange_images().items():
        scored = scorer.score(image_set(pixels, kind))
        typicality = np.array([s.typicality for s in scored])
        confidence = np.array([s.confidence for s in scored])
        truth = np.r_[np.zeros(len(unseen)), np.ones(len(scored))]
        auroc = roc_auc_score(truth, 1 - np.r_[digit_typicality, typicality])
        confidence_auroc = roc_auc_score(truth, 1 - np.r_[digit_confidence, confidence])
        confident = np.mean(confidence > 0.9)
        print(
            f"{kind}: typicality AUROC {auroc:.4f}, confidence AUROC {confidence_auroc:.4f}, over 90 % confident {confident:.0%}, largest typicality {typicality.max():.4f}"
        )
        assert auroc >= 0.95, kind
        assert confident >= 0.5, kind
        assert confidence_auroc < auroc, kind
    assert all(s.predicted in scorer.model.output_names for s in unseen)
    assert "10 nearest of 1,278 reference images" in scorer.method
    assert "classifier.2 (Linear)" in scorer.method


def test_a_reference_too_small_says_how_many_images_it_needs(model, digits) -> None:
    few = ImageSet(digits[0].images[:30], digits[0].display[:30], digits[0].sources[:30], "")
    with pytest.raises(WhyboxError, match="30 image\\(s\\); typicality needs at least 50"):
        ImageTypicality(model, few)


def test_scores_do_not_depend_on_batching_and_follow_the_seed(model, digits) -> None:
    trained, unseen = digits
    reference = ImageSet(trained.images[:400], trained.display[:400], trained.sources[:400], "")
    scorer = ImageTypicality(model, reference)
    whole = scorer.score(unseen)
    again = ImageTypicality(model, reference, batch_size=37).score(unseen)
    assert [s.typicality for s in again] == [s.typicality for s in whole]
    assert [s.distance for s in again] == pytest.approx([s.distance for s in whole], rel=1e-5)
    assert [s.confidence for s in again] == pytest.approx([s.confidence for s in whole], rel=1e-5)
    part = ImageSet(unseen.images[50:55], unseen.display[50:55], unseen.sources[50:55], "")
    assert [s.typicality for s in scorer.score(part)] == [s.typicality for s in whole[50:55]]
    other = ImageTypicality(model, reference, seed=1).score(unseen)
    assert [s.typicality for s in other] != [s.typicality for s in whole]


def _image_model(network: torch.nn.Module) -> Model:
    return Model(
        name="tiny", format="pytorch", kind="torch", task="classification", n_features=DIGIT_SIDE**2,
        feature_names=None, class_names=["a", "b"], output_spaces=("probability", "margin"),
        sha256="", native=None, modality="image", input_shape=SHAPE, module=network, module_output="logits",
    )  # fmt: skip


class _Functional(torch.nn.Module):
    """A network with no layers to hook: its parameters used directly."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2, DIGIT_SIDE**2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


def test_a_network_without_linear_layers_is_read_at_its_last_layer_or_refused(digits) -> None:
    torch.manual_seed(0)
    pooled = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    )  # fmt: skip
    scorer = ImageTypicality(_image_model(pooled), digits[0])
    assert "the 2 inputs of its layer 4 (Flatten)" in scorer.method
    assert len(scorer.score(digits[1])) == DIGITS_SHOWN
    with pytest.raises(WhyboxError, match="runs no layers whybox can hook"):
        ImageTypicality(_image_model(_Functional()), digits[0])


def test_a_graph_exported_for_a_fixed_batch_scores_as_the_network_does(digits) -> None:
    """An ONNX graph with its batch size baked in runs in padded slices (`FixedBatch`);
    the padding must not reach the features."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 2),
    )  # fmt: skip
    trained, unseen = digits
    reference = ImageSet(trained.images[:300], trained.display[:300], trained.sources[:300], "")
    plain = ImageTypicality(_image_model(network), reference).score(unseen)
    sliced = ImageTypicality(_image_model(FixedBatch(network, 8)), reference).score(unseen)
    assert [s.typicality for s in sliced] == [s.typicality for s in plain]
    assert [s.distance for s in sliced] == pytest.approx([s.distance for s in plain], rel=1e-5)
