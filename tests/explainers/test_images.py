"""Image explainers: do the maps point at the evidence, do they depend on what the network
learned (Adebayo et al.'s randomisation test), do they add up, and do they run anywhere."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
import torch

from whybox.dashboard.cli.main import main
from whybox.explainers import captum_base, registry
from whybox.explainers.agreement import rank_agreement
from whybox.explainers.feature_maps import GradCam
from whybox.explainers.gradients import IntegratedGradients, SmoothGrad
from whybox.explainers.memory import CUDA_PROBE_ITEMS
from whybox.explainers.partition import PartitionShap
from whybox.explainers.perturbation import Occlusion
from whybox.explainers.testing import PATCH, QUADRANTS, fixture, image_set, patch_images
from whybox.model_zoo import Model, demos, load_model
from whybox.model_zoo.architectures import ResNet
from whybox.model_zoo.image_data import ImageSet
from whybox.model_zoo.wrap import wrap_torch

GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def patch_cnn() -> Model:
    return fixture("patch-cnn")


@pytest.fixture(scope="module")
def patches() -> tuple[ImageSet, np.ndarray, np.ndarray]:
    images, classes, corners = patch_images(40, seed=2)
    return image_set(images), classes, corners


def pointing_hits(values: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Whether each map's strongest pixel (channels summed) lies on the bright square."""
    heat = values.sum(axis=1)
    rows, cols = np.divmod(heat.reshape(len(heat), -1).argmax(axis=1), heat.shape[2])
    return (
        (rows >= corners[:, 0])
        & (rows < corners[:, 0] + PATCH)
        & (cols >= corners[:, 1])
        & (cols < corners[:, 1] + PATCH)
    )


@pytest.mark.parametrize("name", ["integrated-gradients", "grad-cam", "occlusion"])
def test_pointing_game(name: str, patch_cnn: Model, patches) -> None:
    data, classes, corners = patches
    assert (patch_cnn.predict(data.values).argmax(axis=1) == classes).mean() >= 0.95
    explanation = registry.get(name)().explain(patch_cnn, data)
    assert explanation.values.shape == data.values.shape
    assert explanation.values.dtype == np.float32
    assert pointing_hits(explanation.values, corners).mean() >= 0.9


def randomised(model: Model, seed: int = 123) -> Model:
    """The same architecture with freshly initialised weights (Adebayo et al.'s cascade, all
    layers at once)."""
    network = copy.deepcopy(model.module).cpu()
    torch.manual_seed(seed)
    for module in network.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return wrap_torch(network.eval(), model.input_shape, "logits", class_names=QUADRANTS)


def mean_rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Spearman correlation of |map| between paired images; a constant map (Grad-CAM
    of a network that sees nothing) ranks nothing and counts as 0."""
    return float(rank_agreement(a, b).mean())


@pytest.mark.parametrize(
    ("name", "ceiling"),
    [
        ("saliency", 0.4),
        ("grad-cam", 0.4),
        ("smoothgrad", 0.4),
        # These multiply by (input - baseline), so part of every map is the image itself
        # and survives randomisation, as Adebayo et al. found; it must still fall well below.
        ("integrated-gradients", 0.7),
        ("deeplift", 0.7),
        ("gradient-shap", 0.7),
    ],
)
def test_maps_depend_on_the_learned_weights(
    name: str, ceiling: float, patch_cnn: Model, patches
) -> None:
    """Adebayo et al.'s model-randomisation test: the maps of a network with fresh random
    weights must rank pixels differently from the trained network's (correlation 1)."""
    data = image_set(patches[0].values[:12])
    quick = {"gradient-shap": {"samples": 50}, "smoothgrad": {"samples": 8}}
    explainer = registry.get(name)(**quick.get(name, {}))
    trained = explainer.explain(patch_cnn, data, target="top-left").values
    again = explainer.explain(patch_cnn, data, target="top-left").values
    random = explainer.explain(randomised(patch_cnn), data, target="top-left").values
    assert mean_rank_correlation(trained, again) > 0.99
    assert mean_rank_correlation(trained, random) < ceiling


def test_integrated_gradients_completeness_on_the_digits_demo() -> None:
    model = demos.resolve_model("demo:digits-cnn")
    data = demos.resolve_data("demo:digits", model)
    explanation = IntegratedGradients().explain(model, data, rows=range(40))
    totals = explanation.values.reshape(40, -1).sum(axis=1) + explanation.base_values
    change = np.abs(explanation.predictions - explanation.base_values)
    gaps = np.abs(totals - explanation.predictions)
    assert (gaps <= 0.01 * change).all(), float((gaps / change).max())
    assert explanation.additivity_gap == pytest.approx(gaps.max(), abs=1e-6)


def test_partition_shap_adds_up_to_the_blurred_image(patch_cnn: Model, patches) -> None:
    data = patches[0]
    explanation = PartitionShap(evaluations=300).explain(patch_cnn, data, rows=[0, 1])
    spread = np.abs(explanation.predictions - explanation.base_values).max()
    assert explanation.additivity_gap <= 1e-4 * max(1.0, spread)
    assert np.abs(explanation.values).sum() > 0


def test_auto_takes_integrated_gradients_for_a_differentiable_image_model(
    patch_cnn: Model, patches
) -> None:
    explanation = registry.get("auto")().explain(patch_cnn, patches[0], rows=[0])
    assert explanation.method == "integrated-gradients"
    assert explanation.notes[0].startswith("auto chose integrated-gradients")


def test_occlusion_baseline_can_be_the_mean_image(patch_cnn: Model, patches) -> None:
    data = patches[0]
    black = Occlusion(window=7, stride=7).explain(patch_cnn, data, rows=[0])
    mean = Occlusion(window=7, stride=7, baseline="mean", background=10).explain(
        patch_cnn, data, rows=[0]
    )
    assert not np.allclose(black.values, mean.values)
    assert black.params["baseline"] == "auto" and mean.params["background"] == 10


def test_smoothgrad_is_seeded_per_image(patch_cnn: Model, patches) -> None:
    data = patches[0]
    explainer = SmoothGrad(samples=8)
    batch = explainer.explain(patch_cnn, data, rows=[3, 1, 3]).values
    np.testing.assert_allclose(batch[0], batch[2], atol=1e-6)  # GPU sums vary in the last bits
    alone = explainer.explain(patch_cnn, data, rows=[1]).values[0]
    np.testing.assert_allclose(alone, batch[1], atol=1e-6)
    assert not np.allclose(
        SmoothGrad(samples=8, seed=1).explain(patch_cnn, data, rows=[1]).values[0], alone
    )


def test_grad_cam_layer_is_found_and_overridable(patch_cnn: Model, patches) -> None:
    data = patches[0]
    auto = GradCam().explain(patch_cnn, data, rows=[0]).values
    named = GradCam(layer="features").explain(patch_cnn, data, rows=[0]).values
    np.testing.assert_allclose(auto, named)
    earlier = GradCam(layer="features.3").explain(patch_cnn, data, rows=[0]).values
    assert not np.allclose(auto, earlier)
    with pytest.raises(Exception, match="no module named 'nope'.*features"):
        GradCam(layer="nope").explain(patch_cnn, data, rows=[0])
    assert (auto >= 0).all() and not GradCam.signed


@pytest.mark.parametrize("name", ["grad-cam", "saliency"])
def test_one_pass_methods_run_the_network_on_the_images_once(
    name: str, patch_cnn: Model, patches
) -> None:
    """The pass that attributes also predicts (targets, predictions and the completeness
    notes share it), and the probes for the layer and the batch size run on a model's first
    explanation only (on a GPU the batch-size probe, a few random images measuring memory,
    runs each time, as free memory changes)."""
    explainer = registry.get(name)()
    explainer.explain(patch_cnn, patches[0], rows=[0])
    sizes: list[int] = []
    hook = patch_cnn.module.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    try:
        explainer.explain(patch_cnn, patches[0], rows=range(8))
    finally:
        hook.remove()
    probes = {CUDA_PROBE_ITEMS} if torch.cuda.is_available() else set()
    assert set(sizes) - {8} <= probes and sizes.count(8) == 1


@pytest.mark.parametrize("name", ["grad-cam", "saliency"])
def test_one_pass_methods_explain_and_record_what_a_separate_prediction_would(
    name: str, patch_cnn: Model, patches
) -> None:
    """Each image's predicted class is explained (its values equal those of the class
    given), and the predictions kept from the pass equal the model's own."""
    data, classes, _ = patches
    rows = range(12)
    explainer = registry.get(name)()
    explanation = explainer.explain(patch_cnn, data, rows=rows)
    predicted = patch_cnn.predict(data.values[:12], explanation.output_space)
    np.testing.assert_array_equal(explanation.target, predicted.argmax(axis=1))
    assert len(set(explanation.target)) >= 3
    np.testing.assert_allclose(explanation.predictions, predicted.max(axis=1), rtol=1e-5, atol=1e-6)
    for label in sorted(set(explanation.target)):
        given = explainer.explain(patch_cnn, data, rows=rows, target=int(label))
        assert (given.target == label).all()
        np.testing.assert_allclose(given.predictions, predicted[:, label], rtol=1e-5, atol=1e-6)
        chosen = explanation.target == label
        np.testing.assert_allclose(explanation.values[chosen], given.values[chosen], atol=1e-6)
        if not chosen.all():
            assert not np.allclose(explanation.values[~chosen], given.values[~chosen])


def test_out_of_memory_halves_the_batch_and_keeps_the_values(
    patch_cnn: Model, patches, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = patches[0]
    explainer = IntegratedGradients(steps=16)
    whole = explainer.explain(patch_cnn, data, rows=range(8)).values
    original = IntegratedGradients._attribute_rows
    sizes: list[int] = []

    def tight(self, method, X, *args):
        sizes.append(len(X))
        if len(X) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return original(self, method, X, *args)

    monkeypatch.setattr(captum_base, "gradient_batch", lambda *args: 16 * 8)
    monkeypatch.setattr(IntegratedGradients, "_attribute_rows", tight)
    chunked = explainer.explain(patch_cnn, data, rows=range(8)).values
    np.testing.assert_allclose(chunked, whole, atol=1e-4 * np.abs(whole).max())
    assert sizes[0] == 8 and max(sizes[-3:]) <= 2


def onnx_bytes(network: torch.nn.Module, shape: tuple[int, ...], dynamo: bool = False) -> bytes:
    """`network` exported by the TorchScript exporter, or with `dynamo` by torch.export's."""
    buffer = io.BytesIO()
    dynamic = (
        {"dynamic_shapes": ({0: torch.export.Dim("n")},)}
        if dynamo
        else {"dynamic_axes": {"images": {0: "n"}, "logits": {0: "n"}}, "opset_version": 17}
    )
    torch.onnx.export(
        copy.deepcopy(network).cpu(),
        (torch.zeros(2, *shape),),
        buffer,
        input_names=["images"],
        output_names=["logits"],
        dynamo=dynamo,
        verbose=False,
        **dynamic,
    )
    return buffer.getvalue()


@pytest.fixture(scope="module", params=[False, True], ids=["torchscript", "dynamo"])
def onnx_patch_cnn(request: pytest.FixtureRequest, patch_cnn: Model) -> Model:
    raw = onnx_bytes(patch_cnn.module, patch_cnn.input_shape, dynamo=request.param)
    return load_model(raw, name="cnn.onnx")


def test_onnx_image_classifier_gets_every_gradient_method(
    onnx_patch_cnn: Model, patch_cnn: Model, patches
) -> None:
    data = patches[0]
    model = onnx_patch_cnn
    assert model.modality == "image" and model.input_shape == (1, 28, 28)
    assert model.module is not None
    ours = IntegratedGradients(steps=32).explain(model, data, rows=range(4)).values
    reference = IntegratedGradients(steps=32).explain(patch_cnn, data, rows=range(4)).values
    np.testing.assert_allclose(ours, reference, atol=1e-4 * np.abs(reference).max())


@pytest.mark.parametrize("name", ["grad-cam", "guided-grad-cam", "deeplift"])
def test_onnx_cnn_maps_point_at_the_evidence_and_equal_the_torch_maps(
    name: str, onnx_patch_cnn: Model, patch_cnn: Model, patches
) -> None:
    """The converted graph's nodes are hookable modules: Grad-CAM finds the last feature map
    (the last Relu node), guided backpropagation and DeepLIFT see its ReLUs as torch's."""
    data, _, corners = patches
    ours = registry.get(name)().explain(onnx_patch_cnn, data).values
    assert pointing_hits(ours, corners).mean() >= 0.9
    reference = registry.get(name)().explain(patch_cnn, data).values
    np.testing.assert_allclose(ours, reference, atol=1e-5 * np.abs(reference).max())


def test_onnx_grad_cam_layer_takes_node_and_tensor_names(onnx_patch_cnn: Model, patches) -> None:
    data = patches[0]
    nodes = [m for m in onnx_patch_cnn.module.modules() if getattr(m, "op_type", "") == "Relu"]
    last, first = nodes[-1].onnx_names, nodes[0].onnx_names  # (node name, output name)
    auto = GradCam().explain(onnx_patch_cnn, data, rows=[0]).values
    for name in last:
        np.testing.assert_allclose(
            GradCam(layer=name).explain(onnx_patch_cnn, data, rows=[0]).values, auto
        )
    earlier = GradCam(layer=first[0]).explain(onnx_patch_cnn, data, rows=[0]).values
    assert not np.allclose(auto, earlier)
    with pytest.raises(Exception, match=f"no module named 'nope'.*{last[0]}"):
        GradCam(layer="nope").explain(onnx_patch_cnn, data, rows=[0])


def test_onnx_graph_that_cannot_convert_still_gets_occlusion(
    patch_cnn: Model, patches, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whybox.model_zoo import onnx_graph

    def refuse(proto, outputs=None):
        raise onnx_graph.UnsupportedGraph("ops Mystery have no torch equivalent in whybox")

    monkeypatch.setattr(onnx_graph, "convert", refuse)
    data = patches[0]
    model = load_model(onnx_bytes(patch_cnn.module, patch_cnn.input_shape), name="cnn.onnx")
    assert model.module is None and any("Mystery" in note for note in model.notes)
    support = IntegratedGradients().supports(model, data)
    assert not support and "occlusion" in support.reason
    chosen, reason = registry.get("auto")().pick(model, data)
    assert chosen.name == "occlusion" and "no gradients" in reason
    via_onnxruntime = Occlusion().explain(model, data, rows=[0, 1]).values
    via_torch = Occlusion(device="cpu").explain(patch_cnn, data, rows=[0, 1]).values
    np.testing.assert_allclose(via_onnxruntime, via_torch, atol=1e-4)


def test_resnet_parameter_counts_match_torchvision() -> None:
    """torchvision documents 11,689,512 and 25,557,032 parameters for ResNet-18 and -50."""
    counts = {depth: sum(p.numel() for p in ResNet(depth).parameters()) for depth in (18, 50)}
    assert counts == {18: 11_689_512, 50: 25_557_032}


def test_resnet_equals_torchvision_where_installed() -> None:
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.resnet18(num_classes=7).eval()
    ours = ResNet(18, num_classes=7).eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), reference(x))


def test_cli_writes_maps_index_overlays_and_record(tmp_path) -> None:
    out = tmp_path / "run"
    status = main(
        [
            "explain",
            "demo:digits-cnn",
            "demo:digits",
            "--out",
            str(out),
            "--explainer",
            "grad-cam",
            "--rows",
            "0:3",
            "--mean",
            "0.1",
            "--std",
            "0.5",
        ]
    )
    assert status == 0
    maps = np.load(out / "attributions.npy", allow_pickle=False)
    assert maps.shape == (3, 1, 32, 32) and maps.dtype == np.float32
    index = (out / "attributions_index.csv").read_text().splitlines()
    assert index[0] == "row,source,prediction,target,base_value" and len(index) == 4
    assert index[1].startswith("0,digit_1597_label")
    overlays = sorted((out / "overlays").iterdir())
    assert len(overlays) == 3 and overlays[0].name.startswith("00000_digit_1597")
    record = json.loads((out / "run.json").read_text())
    assert record["data"]["preprocessing"]["mean"] == [0.1]
    assert record["model"]["normalization"] == {"mean": [0.1], "std": [0.5]}
    assert record["signed"] is False
    assert set(record["files"]) == {
        "attributions.npy",
        "attributions_index.csv",
        "explanation.npz",
        *(f"overlays/{path.name}" for path in overlays),
    }


def test_cli_image_options_on_a_tabular_model_are_refused(tmp_path, capsys) -> None:
    status = main(
        ["explain", "demo:credit-mlp", "demo:credit", "--out", str(tmp_path), "--mean", "0.5"]
    )
    assert status == 2
    assert "image models only" in capsys.readouterr().err


@GPU
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["integrated-gradients", "grad-cam", "occlusion", "deeplift"])
def test_gpu_maps_equal_cpu_maps(name: str, patch_cnn: Model, patches) -> None:
    data = patches[0]
    cpu = registry.get(name)(device="cpu").explain(patch_cnn, data, rows=range(6)).values
    gpu = registry.get(name)(device="cuda").explain(patch_cnn, data, rows=range(6))
    assert gpu.device == "cuda"
    np.testing.assert_allclose(gpu.values, cpu, atol=1e-3 * np.abs(cpu).max())
    patch_cnn.to("cpu")


@GPU
@pytest.mark.gpu
def test_bf16_autocast_records_its_completeness_cost(patch_cnn: Model, patches) -> None:
    data = patches[0]
    fp32 = IntegratedGradients(device="cuda").explain(patch_cnn, data, rows=range(6))
    bf16 = IntegratedGradients(device="cuda", precision="bf16").explain(
        patch_cnn, data, rows=range(6)
    )
    patch_cnn.to("cpu")
    assert bf16.params["precision"] == "bf16" and bf16.additivity_gap is not None
    assert bf16.additivity_gap >= fp32.additivity_gap
    assert mean_rank_correlation(fp32.values, bf16.values) > 0.8


@GPU
@pytest.mark.gpu
def test_gpu_batch_is_measured_from_free_memory() -> None:
    from whybox.explainers.memory import gradient_batch

    network = ResNet(18, num_classes=10).cuda().eval()
    small = gradient_batch(network, (3, 64, 64), "cuda")
    large = gradient_batch(network, (3, 224, 224), "cuda")
    assert small > large >= 1


def test_cpu_batches_stay_within_the_cpu_budget() -> None:
    """Bigger CPU batches than the budget ran slower, not faster (see CPU_BUDGET_BYTES)."""
    from whybox.explainers.memory import (
        CPU_BACKWARD_FACTOR,
        CPU_BUDGET_BYTES,
        gradient_batch,
        module_outputs,
    )

    network = ResNet(18, num_classes=10).eval()
    sample = torch.rand(1, 3, 64, 64)
    per_image = sample.nbytes + sum(size for *_, size in module_outputs(network, sample, True))
    forward = gradient_batch(network, (3, 64, 64), "cpu", differentiable=False)
    backward = gradient_batch(network, (3, 64, 64), "cpu")
    assert forward >= 64 and forward * per_image <= CPU_BUDGET_BYTES
    assert 1 <= backward * per_image * CPU_BACKWARD_FACTOR <= CPU_BUDGET_BYTES


def test_onnx_graph_batches_count_the_activations_inside_the_graph(
    onnx_patch_cnn: Model, patch_cnn: Model
) -> None:
    """Every node of a converted graph is a module the memory probe hooks: the batch is
    sized on its activations (as for the torch network), not on its input alone."""
    from whybox.explainers.memory import CPU_BUDGET_BYTES, _activation_bytes, gradient_batch

    sample = torch.rand(1, *patch_cnn.input_shape)
    ours = _activation_bytes(onnx_patch_cnn.torch_module(), sample)
    theirs = _activation_bytes(patch_cnn.torch_module(), sample)
    assert ours >= theirs > 20 * sample.nbytes
    batch = gradient_batch(onnx_patch_cnn.torch_module(), patch_cnn.input_shape, "cpu")
    assert batch <= gradient_batch(patch_cnn.torch_module(), patch_cnn.input_shape, "cpu")
    assert batch * ours <= CPU_BUDGET_BYTES
