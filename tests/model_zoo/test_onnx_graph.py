"""whybox.model_zoo.onnx_graph: ONNX graphs run as torch equal onnxruntime, with torch's gradients."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from whybox.model_zoo.onnx_graph import UnsupportedGraph, convert

TOL = 1e-5
OPSET = 17


def export(module: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    """`module` exported by the TorchScript exporter with a dynamic batch axis."""
    buffer = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        (example,),
        buffer,
        dynamo=False,
        opset_version=OPSET,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "rows"}, "y": {0: "rows"}},
    )
    return onnx.load_from_string(buffer.getvalue())


def run_onnxruntime(proto: onnx.ModelProto, *inputs: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs, strict=True)))


class Cnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.Conv2d(6, 6, 3, stride=2, padding=2, dilation=2, groups=3),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            nn.AvgPool2d(2, ceil_mode=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(6, 3),
        )
        with torch.no_grad():  # batch norm statistics that are not the identity
            self.features[1].running_mean.uniform_(-1, 1)
            self.features[1].running_var.uniform_(0.5, 2)
            self.features[1].weight.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)) + x)
        return self.head(F.adaptive_max_pool2d(out, 1).flatten(1))


class ViewHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(2, 3, 2), nn.Linear(3 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv(x))
        return self.head(x.view(x.size(0), -1))


class ShapeOps(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (rows, 3, 4)
        y = x.transpose(1, 2)  # (rows, 4, 3)
        y = torch.cat([y, torch.sigmoid(y) * 2], dim=2)[:, 1:4, ::2]  # (rows, 3, 3)
        y = F.pad(y, (1, 2), value=0.5).clamp(-0.8, 0.9)  # (rows, 3, 6)
        return y.mean(dim=1) - x.pow(2).sum(dim=(1, 2), keepdim=True).squeeze(2)


MODULES = {
    "mlp-softmax": (
        lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1)),
        (4,),
    ),
    "cnn": (Cnn, (3, 9, 9)),
    "residual": (Residual, (4, 5, 5)),
    "view": (ViewHead, (2, 5, 5)),
    "shape-ops": (ShapeOps, (3, 4)),
}


@pytest.mark.parametrize("case", MODULES)
def test_converted_module_equals_onnxruntime_and_torch_gradients(case):
    make, shape = MODULES[case]
    torch.manual_seed(0)
    module = make().eval()
    proto = export(module, torch.randn(2, *shape))
    converted = convert(proto)
    x = torch.randn(5, *shape)  # a batch size other than the export's

    ours = converted(x)
    assert isinstance(ours, tuple) and len(ours) == 1
    (expected,) = run_onnxruntime(proto, x.numpy())
    np.testing.assert_allclose(ours[0].detach().numpy(), expected, atol=TOL, rtol=TOL)

    weights = torch.randn(expected.shape)  # a scalar whose gradient a constant sum cannot hide
    x_ours, x_torch = x.clone().requires_grad_(), x.clone().requires_grad_()
    (converted(x_ours)[0] * weights).sum().backward()
    (module(x_torch) * weights).sum().backward()
    assert x_torch.grad.abs().max() > 1e-3
    np.testing.assert_allclose(x_ours.grad.numpy(), x_torch.grad.numpy(), atol=TOL, rtol=TOL)


def test_state_dict_holds_the_initializers():
    torch.manual_seed(0)
    proto = export(Cnn(), torch.randn(2, 3, 9, 9))
    converted = convert(proto)
    state = converted.state_dict()
    assert len(proto.graph.initializer) >= 6  # batch norm is folded into the conv
    for init in proto.graph.initializer:
        stored = state[converted.onnx_names[init.name]]
        np.testing.assert_array_equal(stored.numpy(), numpy_helper.to_array(init))
    assert all("." not in name for name in state)


def graph_of(nodes, inputs, outputs, initializers=(), opset=OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def floats(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


# One node each, for semantics torch's exporter rarely produces: (op, attributes, input
# shape, extra int64 inputs, opset).
# fmt: off
NODES = {
    "conv-same-upper": ("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (2, 2, 6, 5), {}, 17),
    "conv-asymmetric-pads": ("Conv", {"pads": [0, 1, 2, 0]}, (2, 2, 5, 5), {}, 17),
    "conv-1d-same-lower": ("Conv", {"auto_pad": "SAME_LOWER"}, (2, 2, 7), {}, 17),
    "conv-transpose": ("ConvTranspose", {"strides": [2, 2], "pads": [1, 0, 0, 1], "output_padding": [1, 1]}, (2, 2, 4, 4), {}, 17),
    "maxpool-asymmetric-ceil": ("MaxPool", {"kernel_shape": [2, 3], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1}, (2, 2, 6, 7), {}, 17),
    "maxpool-ceil-drops-window": ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1], "ceil_mode": 1}, (1, 1, 4, 4), {}, 17),
    "maxpool-dilated": ("MaxPool", {"kernel_shape": [2, 2], "dilations": [2, 1], "pads": [1, 0, 1, 1]}, (1, 2, 5, 5), {}, 17),
    "maxpool-same-lower": ("MaxPool", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, (1, 2, 6, 5), {}, 17),
    "avgpool-exclude-pad": ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 1]}, (2, 2, 6, 6), {}, 17),
    "avgpool-include-pad-ceil": ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1, "ceil_mode": 1}, (1, 2, 6, 6), {}, 17),
    "softmax-opset11-flattens": ("Softmax", {"axis": 1}, (2, 3, 4), {}, 11),
    "logsoftmax-opset13": ("LogSoftmax", {"axis": 1}, (2, 3, 4), {}, 13),
    "slice-negative-step": ("Slice", {}, (3, 6), {"starts": [-1, 5], "ends": [-(2**63), 0], "axes": [0, 1], "steps": [-1, -2]}, 17),
    "slice-opset9-attributes": ("Slice", {"starts": [1], "ends": [100], "axes": [1]}, (3, 6), {}, 9),
    "gather-negative": ("Gather", {"axis": 1}, (3, 5), {"indices": [[-1, 0], [2, -2]]}, 17),
    "reducesum-opset11-attribute": ("ReduceSum", {"axes": [1], "keepdims": 0}, (2, 3, 4), {}, 11),
    "reducemax-opset18-input": ("ReduceMax", {"keepdims": 1}, (2, 3, 4), {"axes": [0, 2]}, 18),
    "reducemean-noop": ("ReduceMean", {"noop_with_empty_axes": 1}, (2, 3), {"axes": []}, 18),
    "unsqueeze-opset11": ("Unsqueeze", {"axes": [0, -1]}, (2, 3), {}, 11),
    "pad-reflect": ("Pad", {"mode": "reflect"}, (1, 2, 4, 4), {"pads": [0, 0, 1, 2, 0, 0, 2, 1]}, 17),
    "pad-edge": ("Pad", {"mode": "edge"}, (1, 2, 4, 4), {"pads": [0, 0, 2, 0, 0, 0, 0, 3]}, 17),
    "resize-nearest-asymmetric": ("Resize", {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, (1, 2, 3, 4), {"": [], "sizes": [1, 2, 6, 6]}, 17),
    "resize-nearest-half-pixel": ("Resize", {"mode": "nearest"}, (1, 2, 3, 4), {"": [], "sizes": [1, 2, 7, 5]}, 17),
    "resize-linear-half-pixel": ("Resize", {"mode": "linear"}, (1, 2, 3, 4), {"": [], "sizes": [1, 2, 7, 9]}, 17),
    "resize-linear-align-corners": ("Resize", {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, (1, 2, 3, 4), {"": [], "sizes": [1, 2, 5, 2]}, 17),
    "flatten-negative-axis": ("Flatten", {"axis": -1}, (2, 3, 4), {}, 17),
    "flatten-axis-0": ("Flatten", {"axis": 0}, (2, 3, 4), {}, 17),
    "tile": ("Tile", {}, (2, 3), {"repeats": [2, 3]}, 17),
    "expand": ("Expand", {}, (3, 1), {"shape": [2, 1, 4]}, 17),
    "split-opset18-uneven": ("Split", {"axis": 1, "num_outputs": 3}, (2, 7), {}, 18),
    "hardswish": ("HardSwish", {}, (2, 9), {}, 17),
    "hardsigmoid": ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, (2, 9), {}, 17),
    "selu": ("Selu", {}, (2, 9), {}, 17),
    "elu": ("Elu", {"alpha": 0.7}, (2, 9), {}, 17),
    "gelu-tanh-opset20": ("Gelu", {"approximate": "tanh"}, (2, 9), {}, 20),
    "clip-opset6-attributes": ("Clip", {"min": -0.5, "max": 0.3}, (2, 9), {}, 6),
    "prelu": ("PRelu", {}, (2, 3, 2, 2), {}, 17),
    "layer-norm": ("LayerNormalization", {"axis": -2, "epsilon": 1e-3}, (2, 3, 4), {}, 17),
    "instance-norm": ("InstanceNormalization", {}, (2, 3, 4), {}, 17),
    "einsum": ("Einsum", {"equation": "bij->bj"}, (2, 3, 4), {}, 17),
    "gemm-transposed-scaled": ("Gemm", {"transA": 1, "alpha": 0.5, "beta": 2.0}, (3, 2), {}, 17),
}
# fmt: on
WEIGHTS = {  # float initializers some ops need besides the input
    "Conv": lambda shape: [
        np.random.default_rng(1).normal(size=(4, shape[1], *[3] * (len(shape) - 2)))
    ],
    "ConvTranspose": lambda shape: [
        np.random.default_rng(1).normal(size=(2, 3, 3, 3)),
        np.arange(3.0),
    ],
    "Gemm": lambda shape: [np.random.default_rng(1).normal(size=(3, 4)), np.arange(4.0)],
    "PRelu": lambda shape: [np.array([0.1, -0.5, 2.0]).reshape(3, 1, 1)],
    "LayerNormalization": lambda shape: [np.linspace(0.5, 2, 12).reshape(3, 4), np.arange(4.0)],
    "InstanceNormalization": lambda shape: [np.array([0.5, 1.0, 2.0]), np.arange(3.0)],
}
OUTPUTS = {"Split": 3}


@pytest.mark.parametrize("case", NODES)
def test_single_node_equals_onnxruntime(case):
    op, attrs, shape, int_inputs, opset = NODES[case]
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    weights = [
        numpy_helper.from_array(w.astype(np.float32), f"w{i}")
        for i, w in enumerate(WEIGHTS.get(op, lambda _: [])(shape))
    ]
    extra = [ints(name, values) for name, values in int_inputs.items() if name]
    names = ["x", *(w.name for w in weights), *int_inputs]
    if op == "Resize":  # roi and scales left empty, sizes given
        names = ["x", "", "", "sizes"]
    outputs = [f"y{i}" for i in range(OUTPUTS.get(op, 1))]
    node = helper.make_node(op, names, outputs, **attrs)
    proto = graph_of(
        [node],
        [floats("x", list(shape))],
        [floats(o, None) for o in outputs],
        weights + extra,
        opset,
    )

    expected = run_onnxruntime(proto, x)
    x_ours = torch.from_numpy(x).requires_grad_()
    ours = convert(proto)(x_ours)
    assert len(ours) == len(expected)
    for got, want in zip(ours, expected, strict=True):
        assert tuple(got.shape) == want.shape
        np.testing.assert_allclose(got.detach().numpy(), want, atol=TOL, rtol=TOL)
    sum(o.sum() for o in ours).backward()
    assert x_ours.grad is not None and torch.isfinite(x_ours.grad).all()


def test_graph_with_unsupported_ops_is_refused_naming_them():
    x = floats("x", [None, 4])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("NonMaxSuppression", ["a", "a"], ["b"]),
        helper.make_node("Loop", ["b"], ["c"]),
        helper.make_node("NonMaxSuppression", ["c", "c"], ["d"]),
        helper.make_node("LinearClassifier", ["d"], ["e", "y"], domain="ai.onnx.ml"),
    ]
    proto = graph_of(nodes, [x], [floats("y", [None, 2])])
    with pytest.raises(UnsupportedGraph) as caught:
        convert(proto)
    message = str(caught.value)
    assert message == (
        "ops LinearClassifier (ai.onnx.ml), Loop, NonMaxSuppression have no torch equivalent "
        "in whybox"
    )


def test_several_inputs_and_outputs_in_graph_order():
    a, b = floats("a", [None, 3]), floats("b", [None, 3])
    nodes = [
        helper.make_node("Mul", ["a", "b"], ["product"]),
        helper.make_node("Sub", ["a", "b"], ["difference"]),
    ]
    proto = graph_of(nodes, [a, b], [floats("difference", None), floats("product", None)])
    left, right = torch.randn(4, 3), torch.randn(4, 3)
    difference, product = convert(proto)(left, right)
    torch.testing.assert_close(difference, left - right)
    torch.testing.assert_close(product, left * right)
    with pytest.raises(TypeError, match="2 input"):
        convert(proto)(left)
