"""whybox.model_zoo.output_space and normalize_images: one formula each, and the numpy and
torch paths that apply it give the same numbers."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

from whybox.model_zoo.model import normalize_images
from whybox.model_zoo.output_space import (
    MODULE_OUTPUTS,
    OUTPUT_SPACES,
    class_count,
    map_outputs,
    output_spaces_for,
)

WIDTHS = {"logit": (1,), "logits": (2, 5), "probability": (1, 4), "value": (1, 3)}


def raw_outputs(module_output: str, width: int) -> np.ndarray:
    rng = np.random.default_rng(width)
    if module_output == "probability":
        raw = rng.uniform(size=(6, width))
        return raw if width == 1 else raw / raw.sum(axis=1, keepdims=True)
    # Large and tiny logits too: the sigmoid and softmax must not overflow on either side.
    return np.vstack(
        [
            rng.normal(scale=3.0, size=(5, width)),
            np.full((2, width), 800.0),
            -800.0 * np.eye(2, width),
        ]
    )


@pytest.mark.parametrize(
    "module_output, space, width",
    [
        (module_output, space, width)
        for module_output, space in itertools.product(MODULE_OUTPUTS, OUTPUT_SPACES)
        for width in WIDTHS[module_output]
    ],
)
def test_numpy_and_torch_map_outputs_alike(module_output: str, space: str, width: int) -> None:
    raw = raw_outputs(module_output, width)
    from_numpy = map_outputs(raw, module_output, space)
    from_torch = map_outputs(torch.from_numpy(raw), module_output, space)
    assert isinstance(from_numpy, np.ndarray) and isinstance(from_torch, torch.Tensor)
    assert from_numpy.dtype == np.float64 and np.isfinite(from_numpy).all()
    np.testing.assert_allclose(from_numpy, from_torch.numpy(), rtol=1e-12, atol=1e-15)
    # A single column given as a vector maps as that column.
    if width == 1:
        np.testing.assert_array_equal(map_outputs(raw[:, 0], module_output, space), from_numpy)
    if space in output_spaces_for(module_output) and module_output != "value":
        assert from_numpy.shape[1] == class_count(module_output, width)


@pytest.mark.parametrize(
    "module_output, space, expected",
    [
        ("logit", "margin", [[-2.0, 2.0]]),
        ("logit", "probability", [[1 / (1 + np.exp(2.0)), 1 / (1 + np.exp(-2.0))]]),
        ("logits", "margin", [[2.0, 0.0]]),
        ("logits", "probability", [[np.exp(2) / (np.exp(2) + 1), 1 / (np.exp(2) + 1)]]),
        ("probability", "probability", [[0.2, 0.8]]),
        ("value", "value", [[2.0]]),
    ],
)
def test_known_values(module_output: str, space: str, expected: list) -> None:
    raw = {"logits": [[2.0, 0.0]], "probability": [[0.8]]}.get(module_output, [[2.0]])
    np.testing.assert_allclose(map_outputs(np.array(raw), module_output, space), expected)


def test_torch_mapping_keeps_gradients() -> None:
    raw = torch.tensor([[0.5], [-1.0]], requires_grad=True)
    map_outputs(raw, "logit", "probability")[:, 1].sum().backward()
    p = torch.sigmoid(raw.detach())
    torch.testing.assert_close(raw.grad, p * (1 - p))


def test_numpy_mapping_does_not_import_torch() -> None:
    """Tree and scikit-learn predictions go through the numpy path without paying for torch."""
    code = (
        "import sys, numpy as np\n"
        "from whybox.model_zoo.output_space import map_outputs\n"
        "map_outputs(np.zeros(3), 'logit', 'probability')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_and_torch_normalise_images_alike(dtype: type) -> None:
    images = np.random.default_rng(0).uniform(size=(2, 3, 4, 5)).astype(dtype)
    normalization = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))
    from_numpy = normalize_images(images, normalization)
    from_torch = normalize_images(torch.from_numpy(images), normalization)
    assert from_torch.dtype == torch.from_numpy(images).dtype
    mean, std = (np.reshape(v, (1, 3, 1, 1)) for v in normalization)
    np.testing.assert_allclose(from_numpy, (images.astype(np.float64) - mean) / std)
    tolerance = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, rtol=tolerance, atol=tolerance)
