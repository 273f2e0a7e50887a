"""Image networks from safetensors, trusted torch files and ONNX: shapes, classes, outputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from whybox.model_zoo import WhyboxError, load_model
from whybox.model_zoo.architectures import ResNet, SmallCNN
from whybox.model_zoo.safetensors_models import save_safetensors


def test_resnet_safetensors_round_trip_takes_any_size() -> None:
    torch.manual_seed(0)
    network = ResNet(18, num_classes=3).eval()
    raw = save_safetensors(
        network, "resnet", {"depth": 18, "num_classes": 3}, "logits", class_names=["a", "b", "c"]
    )
    model = load_model(raw, name="resnet18.safetensors")
    assert (model.modality, model.input_shape, model.class_names) == (
        "image",
        (3, 0, 0),
        ["a", "b", "c"],
    )
    images = np.random.default_rng(0).uniform(size=(2, 3, 40, 48)).astype(np.float32)
    with torch.no_grad():
        expected = network(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(model.predict(images, "margin"), expected, rtol=1e-5, atol=1e-5)


def test_small_cnn_safetensors_keeps_its_fixed_size() -> None:
    config = {"in_channels": 3, "num_classes": 4, "image_size": [20, 24]}
    raw = save_safetensors(SmallCNN(**config), "small-cnn", config, "logits")
    model = load_model(raw, name="cnn.safetensors")
    assert model.input_shape == (3, 20, 24) and model.n_features == 3 * 20 * 24
    assert model.feature_names is None and model.class_names == ["0", "1", "2", "3"]


def test_safetensors_weights_that_do_not_fit_the_resnet_are_refused() -> None:
    raw = save_safetensors(ResNet(18, num_classes=3), "resnet", {"depth": 18}, "logits")
    with pytest.raises(WhyboxError, match="fc.weight is \\[3, 512\\], expected \\[1000, 512\\]"):
        load_model(raw, name="resnet.safetensors")


def test_trusted_torchscript_image_network_reads_its_declared_shape() -> None:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(SmallCNN(1, 10, (28, 28)).eval()), buffer)
    with pytest.raises(WhyboxError, match="can run code"):
        load_model(buffer.getvalue(), name="cnn.pt")
    model = load_model(buffer.getvalue(), name="cnn.pt", trusted=True)
    assert (model.format, model.modality, model.input_shape) == (
        "torchscript",
        "image",
        (1, 28, 28),
    )


def test_trusted_checkpoint_of_a_plain_network_finds_the_size_it_runs_at() -> None:
    """No input_shape attribute: the first Conv2d gives the channels, probing the size."""
    network = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 32 * 32, 5)
    )
    buffer = io.BytesIO()
    torch.save(network, buffer)
    model = load_model(buffer.getvalue(), name="net.pt", trusted=True)
    assert model.input_shape == (3, 32, 32) and model.class_names == [str(i) for i in range(5)]


def test_normalisation_is_applied_inside_the_model() -> None:
    config = {"in_channels": 3, "num_classes": 2, "image_size": [8, 8]}
    network = SmallCNN(**config).eval()
    model = load_model(save_safetensors(network, "small-cnn", config, "logits"))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    normalized = model.normalized(mean, std)
    images = np.random.default_rng(1).uniform(size=(3, 3, 8, 8)).astype(np.float32)
    shifted = (images - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    np.testing.assert_allclose(
        normalized.predict(images, "margin"),
        model.predict(shifted.astype(np.float32), "margin"),
        rtol=1e-5,
        atol=1e-5,
    )
    assert model.normalization is None and normalized.module is model.module
    assert normalized.summary()["normalization"] == {"mean": mean, "std": std}
