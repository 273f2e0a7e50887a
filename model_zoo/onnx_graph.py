"""ONNX graphs as torch modules, so gradient methods (Captum) can run through them.

whybox used onnx2torch for this, but onnx2torch hard-requires torchvision, whose only wheels
here are CUDA builds that force torch up from the CPU build whybox installs. This module is a
small interpreter instead: `convert` keeps the graph's tensors as buffers and `forward` runs
the nodes in order (ONNX graphs are topologically sorted) with torch functions, one small
function per ONNX op in `OPS`, covering what tabular MLPs and image CNNs/ResNets use, with the
semantics of opsets 11-21. Everything `forward` does is torch, so it is differentiable in the
float inputs and runs on whatever device the module is moved to.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

Tensor = torch.Tensor
Inputs = list[Any]  # a node's input tensors, None for an omitted optional input
Op = Callable[[dict[str, Any], Inputs], list[Tensor]]

DEFAULT_DOMAINS = ("", "ai.onnx")
DTYPES = {  # TensorProto element types
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    16: torch.bfloat16,
}


class UnsupportedGraph(Exception):
    """The graph uses ops (or data) that whybox cannot express in torch."""


# helpers ------------------------------------------------------------------------------------


def _arg(inputs: Inputs, index: int) -> Tensor | None:
    return inputs[index] if index < len(inputs) else None


def _ints(tensor: Tensor) -> list[int]:
    return [int(v) for v in tensor.reshape(-1).tolist()]


def _given(attrs: dict[str, Any], inputs: Inputs, name: str, index: int) -> list[int] | None:
    """Ints from attribute `name` (older opsets) or else input `index` (newer ones)."""
    if name in attrs:
        return list(attrs[name])
    tensor = _arg(inputs, index)
    return None if tensor is None else _ints(tensor)


def _torch_pads(pads: Sequence[int]) -> list[int]:
    """ONNX pads [b1, b2, ..., e1, e2, ...] in F.pad's order (b_last, e_last, ..., b1, e1)."""
    n = len(pads) // 2
    return [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])]


def _spatial_pads(
    attrs: dict[str, Any], size: Sequence[int], kernel: Sequence[int], strides: Sequence[int]
) -> list[int]:
    """A Conv's or pool's pads [begins..., ends...] for spatial `size`, auto_pad resolved."""
    n, auto = len(size), attrs.get("auto_pad", "NOTSET")
    dilations = attrs.get("dilations", [1] * n)
    if auto == "VALID":
        return [0] * (2 * n)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        return list(attrs.get("pads", [0] * (2 * n)))
    pads = [0] * (2 * n)
    for i in range(n):
        span = (kernel[i] - 1) * dilations[i] + 1
        total = max((-(-size[i] // strides[i]) - 1) * strides[i] + span - size[i], 0)
        small = total // 2
        pads[i] = small if auto == "SAME_UPPER" else total - small
        pads[i + n] = total - pads[i]
    return pads


def _tensor(proto: onnx.TensorProto) -> Tensor:
    try:
        return torch.from_numpy(np.array(numpy_helper.to_array(proto), copy=True))
    except TypeError:  # strings, bfloat16 via ml_dtypes and the like
        kind = onnx.TensorProto.DataType.Name(proto.data_type)
        raise UnsupportedGraph(
            f"tensor {proto.name or '(unnamed)'} of type {kind} has no torch equivalent in whybox"
        ) from None


def _attribute(attr: onnx.AttributeProto) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return _tensor(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


# ops ----------------------------------------------------------------------------------------


def _unary(fn: Callable[[Tensor], Tensor]) -> Op:
    return lambda attrs, inputs: [fn(inputs[0])]


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Op:
    return lambda attrs, inputs: [fn(inputs[0], inputs[1])]


def _variadic(fn: Callable[[Tensor, Tensor], Tensor]) -> Op:
    return lambda attrs, inputs: [reduce(fn, inputs)]


def _div(a: Tensor, b: Tensor) -> Tensor:
    return a / b if a.is_floating_point() else torch.div(a, b, rounding_mode="trunc")


def _pow(a: Tensor, b: Tensor) -> Tensor:
    return torch.pow(a, b).to(a.dtype)


def _conv(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, w, b = inputs[0], inputs[1], _arg(inputs, 2)
    n = w.dim() - 2
    strides, dilations = attrs.get("strides", [1] * n), attrs.get("dilations", [1] * n)
    kernel = attrs.get("kernel_shape", list(w.shape[2:]))
    pads = _spatial_pads(attrs, list(x.shape[2:]), kernel, strides)
    padding: Any = pads[:n]
    if pads[:n] != pads[n:]:
        x, padding = F.pad(x, _torch_pads(pads)), 0
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return [conv(x, w, b, strides, padding, dilations, attrs.get("group", 1))]


def _conv_transpose(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, w, b = inputs[0], inputs[1], _arg(inputs, 2)
    n, auto = w.dim() - 2, attrs.get("auto_pad", "NOTSET")
    strides, dilations = attrs.get("strides", [1] * n), attrs.get("dilations", [1] * n)
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
    y = conv(x, w, None, strides, 0, 0, attrs.get("group", 1), dilations)
    extra = attrs.get("output_padding", [0] * n)
    target = attrs.get("output_shape")
    if target is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        target = [x.shape[2 + i] * strides[i] for i in range(n)]
    if target is not None:
        total = [y.shape[2 + i] + extra[i] - target[-n:][i] for i in range(n)]
        begins = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        pads = begins + [t - s for t, s in zip(total, begins, strict=True)]
    else:
        pads = [0] * (2 * n) if auto == "VALID" else attrs.get("pads", [0] * (2 * n))
    # output_padding grows the end (cells no kernel reaches: bias only); pads crop
    ends = [e - p for e, p in zip(extra, pads[n:], strict=True)]
    y = F.pad(y, _torch_pads([-p for p in pads[:n]] + ends))
    return [y if b is None else y + b.reshape(1, -1, *[1] * n)]


def _pool(attrs: dict[str, Any], x: Tensor, kind: str) -> Tensor:
    """Max or average pooling with ONNX's output size, pads and ceil_mode, in floor-mode torch."""
    n, size = x.dim() - 2, list(x.shape[2:])
    kernel = attrs["kernel_shape"]
    strides, dilations = attrs.get("strides", [1] * n), attrs.get("dilations", [1] * n)
    pads = _spatial_pads(attrs, size, kernel, strides)
    ceil, outs, ends = attrs.get("ceil_mode", 0), [], []
    for i in range(n):
        span = (kernel[i] - 1) * dilations[i] + 1
        room = size[i] + pads[i] + pads[i + n] - span
        out = (-(-room // strides[i]) if ceil else room // strides[i]) + 1
        if ceil and (out - 1) * strides[i] >= size[i] + pads[i]:
            out -= 1  # no window starts in the end padding
        outs.append(out)
        ends.append(max(pads[i + n], (out - 1) * strides[i] + span - size[i] - pads[i]))
    outer = _torch_pads(pads[:n] + ends)
    if kind == "max":
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
        x = F.pad(x, outer, value=-math.inf) if any(outer) else x  # no copy of the map
        y = pool(x, kernel, strides, 0, dilations)
    elif any(d != 1 for d in dilations):
        raise NotImplementedError("AveragePool with dilations")
    elif not any(outer):
        y = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1](x, kernel, strides)
    else:
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
        mask = x.new_ones((1, 1, *size))  # the cells that count in each window's mean
        if attrs.get("count_include_pad", 0):
            grown = [e - p for e, p in zip(ends, pads[n:], strict=True)]
            mask = F.pad(F.pad(mask, _torch_pads(pads), value=1.0), _torch_pads([0] * n + grown))
        else:
            mask = F.pad(mask, outer)
        y = pool(F.pad(x, outer), kernel, strides) / pool(mask, kernel, strides)
    return y[(slice(None), slice(None), *[slice(0, o) for o in outs])]


def _max_pool(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    return [_pool(attrs, inputs[0], "max")]


def _average_pool(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    return [_pool(attrs, inputs[0], "average")]


def _global(fn: Callable[..., Tensor]) -> Op:
    return lambda attrs, inputs: [fn(inputs[0], dim=tuple(range(2, inputs[0].dim())), keepdim=True)]


def _batch_norm(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, scale, bias, mean, var = inputs[:5]
    return [F.batch_norm(x, mean, var, scale, bias, False, 0.0, attrs.get("epsilon", 1e-5))]


def _instance_norm(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, scale, bias = inputs[:3]
    return [F.instance_norm(x, weight=scale, bias=bias, eps=attrs.get("epsilon", 1e-5))]


def _layer_norm(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, scale, bias = inputs[0], inputs[1], _arg(inputs, 2)
    axis = attrs.get("axis", -1) % x.dim()
    y = F.layer_norm(x, x.shape[axis:], eps=attrs.get("epsilon", 1e-5)) * scale
    return [y if bias is None else y + bias]


def _softmax_like(fn: Callable[[Tensor, int], Tensor]) -> Op:
    def op(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
        x, modern = inputs[0], attrs["_opset"] >= 13
        axis = attrs.get("axis", -1 if modern else 1)
        if modern:
            return [fn(x, axis)]
        axis %= max(x.dim(), 1)  # before opset 13: over the input flattened to 2D at axis
        flat = x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
        return [fn(flat, 1).reshape(x.shape)]

    return op


def _gemm(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    a, b, c = inputs[0], inputs[1], _arg(inputs, 2)
    a = a.t() if attrs.get("transA", 0) else a
    b = b.t() if attrs.get("transB", 0) else b
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    y = a @ b if alpha == 1.0 else alpha * (a @ b)
    if c is None:
        return [y]
    return [y + (c if beta == 1.0 else beta * c)]


def _clip(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    low, high = attrs.get("min", _arg(inputs, 1)), attrs.get("max", _arg(inputs, 2))
    if low is None and high is None:
        return [inputs[0]]
    return [torch.clamp(inputs[0], low, high)]


def _constant(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    if "value" in attrs:
        return [attrs["value"]]
    for key, dtype in [("value_float", torch.float32), ("value_int", torch.int64)]:
        for name in (key, key + "s"):
            if name in attrs:
                return [torch.tensor(attrs[name], dtype=dtype)]
    raise NotImplementedError(f"Constant with {', '.join(a for a in attrs if a[0] != '_')}")


def _constant_of_shape(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    value = attrs.get("value", torch.zeros(1))
    shape = inputs[0]
    fill = value.reshape(-1)[0].item()
    return [torch.full(_ints(shape), fill, dtype=value.dtype, device=shape.device)]


def _dropout(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x = inputs[0]
    return [x, torch.ones_like(x, dtype=torch.bool)][: attrs["_outputs"]]


def _flatten(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis += x.dim() if axis < 0 else 0
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def _reshape(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, shape = inputs[0], _ints(inputs[1])
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [x.reshape(shape)]


def _transpose(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x = inputs[0]
    return [x.permute(attrs.get("perm", list(reversed(range(x.dim())))))]


def _squeeze(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, axes = inputs[0], _given(attrs, inputs, "axes", 1)
    if axes is None:
        return [x.squeeze()]
    return [x.squeeze(tuple(a % x.dim() for a in axes))]


def _unsqueeze(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, axes = inputs[0], _given(attrs, inputs, "axes", 1) or []
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return [x]


def _shape(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x = inputs[0]
    dims = list(x.shape)[attrs.get("start", 0) : attrs.get("end")]
    return [torch.tensor(dims, dtype=torch.int64, device=x.device)]


def _size(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x = inputs[0]
    return [torch.tensor(x.numel(), dtype=torch.int64, device=x.device)]


def _gather(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, index = inputs[0], inputs[1].long()
    axis = attrs.get("axis", 0) % x.dim()
    index = torch.where(index < 0, index + x.shape[axis], index)
    picked = x.index_select(axis, index.reshape(-1))
    return [picked.reshape((*x.shape[:axis], *index.shape, *x.shape[axis + 1 :]))]


def _slice(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x = inputs[0]
    starts, ends = _given(attrs, inputs, "starts", 1) or [], _given(attrs, inputs, "ends", 2) or []
    axes = _given(attrs, inputs, "axes", 3) or list(range(len(starts)))
    steps = _given(attrs, inputs, "steps", 4) or [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= x.dim()
        dim = x.shape[axis]
        start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            x = x[(slice(None),) * axis + (slice(start, end, step),)]
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            x = x.index_select(axis, torch.arange(start, end, step, device=x.device))
    return [x]


def _split(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, axis = inputs[0], attrs.get("axis", 0)
    sizes = _given(attrs, inputs, "split", 1)
    if sizes is None:
        parts, dim = attrs.get("num_outputs", attrs["_outputs"]), x.shape[axis]
        chunk = -(-dim // parts)
        sizes = [max(0, min(chunk, dim - i * chunk)) for i in range(parts)]
    return list(torch.split(x, sizes, dim=axis))


def _reduce(fn: Callable[..., Tensor]) -> Op:
    def op(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
        x, axes = inputs[0], _given(attrs, inputs, "axes", 1)
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.dim()))
        dims = tuple(a % x.dim() for a in axes)
        return [fn(x, dim=dims, keepdim=bool(attrs.get("keepdims", 1)))]

    return op


def _cast(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    if attrs["to"] not in DTYPES:
        kind = onnx.TensorProto.DataType.Name(attrs["to"])
        raise NotImplementedError(f"Cast to {kind}")
    return [inputs[0].to(DTYPES[attrs["to"]])]


PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def _pad(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, rank = inputs[0], inputs[0].dim()
    pads = _given(attrs, inputs, "pads", 1) or []
    value = attrs.get("value", _arg(inputs, 2))
    value = 0.0 if value is None else float(value) if isinstance(value, float) else value.item()
    axes = [a % rank for a in _given(attrs, inputs, "axes", 3) or range(rank)]
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
    order, mode = _torch_pads(full), PAD_MODES[attrs.get("mode", "constant")]
    if mode == "constant":
        return [F.pad(x, order, value=value)]
    while len(order) > 2 and order[-2:] == [0, 0]:  # the other modes pad trailing dims only
        order = order[:-2]
    return [F.pad(x, order, mode=mode)]


def _expand(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x = inputs[0]
    return [x.expand(torch.broadcast_shapes(x.shape, tuple(_ints(inputs[1]))))]


def _range(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    start, limit, delta = inputs
    values = start.item(), limit.item(), delta.item()
    return [torch.arange(*values, dtype=start.dtype, device=start.device)]


NEAREST: dict[str, Callable[[Tensor], Tensor]] = {
    "round_prefer_floor": lambda s: torch.ceil(s - 0.5),
    "round_prefer_ceil": lambda s: torch.floor(s + 0.5),
    "floor": torch.floor,
    "ceil": torch.ceil,
}


def _source(coords: str, dst: Tensor, scale: float, n_in: int, n_out: int) -> Tensor:
    """Resize: the input coordinate of each output coordinate `dst` along one axis."""
    if coords == "align_corners":
        return dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else dst * 0
    if coords == "asymmetric":
        return dst / scale
    if coords == "pytorch_half_pixel" and n_out == 1:
        return dst * 0
    if coords in ("half_pixel", "pytorch_half_pixel"):
        return (dst + 0.5) / scale - 0.5
    if coords == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / (scale * n_in))
        return offset + (dst + 0.5) / scale - 0.5
    raise NotImplementedError(f"Resize with coordinate_transformation_mode {coords}")


def _resize(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, opset, rank = inputs[0], attrs["_opset"], inputs[0].dim()
    mode = attrs.get("mode", "nearest")
    coords = attrs.get("coordinate_transformation_mode", "half_pixel")
    if opset < 11:
        coords = "asymmetric"
    if mode not in ("nearest", "linear") or attrs.get("antialias", 0):
        raise NotImplementedError(f"Resize with mode {mode}, antialias {attrs.get('antialias', 0)}")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise NotImplementedError("Resize with keep_aspect_ratio_policy")
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    scales_in, sizes_in = _arg(inputs, 1 if opset < 11 else 2), _arg(inputs, 3)
    scales, sizes = [1.0] * rank, list(x.shape)
    if sizes_in is not None and sizes_in.numel():
        for axis, size in zip(axes, _ints(sizes_in), strict=True):
            sizes[axis], scales[axis] = size, size / x.shape[axis]
    else:
        for axis, scale in zip(axes, scales_in.reshape(-1).tolist(), strict=True):
            sizes[axis], scales[axis] = math.floor(x.shape[axis] * scale), scale
    for axis in range(rank):
        n_in, n_out, scale = x.shape[axis], sizes[axis], scales[axis]
        if n_in == n_out and scale == 1.0:
            continue
        dst = torch.arange(n_out, dtype=torch.float32, device=x.device)
        src = _source(coords, dst, scale, n_in, n_out)
        if mode == "nearest":
            rounding = attrs.get("nearest_mode", "round_prefer_floor")
            if opset < 11:  # Resize-10 floors when growing, ceils when shrinking
                rounding = "floor" if scale >= 1 else "ceil"
            index = NEAREST[rounding](src).clamp(0, n_in - 1).long()
            x = x.index_select(axis, index)
            continue
        src = src.clamp(0, n_in - 1)
        low = src.floor()
        shape = [1] * rank
        shape[axis] = n_out
        weight = (src - low).to(x.dtype).reshape(shape)
        low = low.long()
        high = (low + 1).clamp(max=n_in - 1)
        x = x.index_select(axis, low) * (1 - weight) + x.index_select(axis, high) * weight
    return [x]


def _prelu(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    x, slope = inputs
    return [torch.where(x > 0, x, x * slope)]


def _selu(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    alpha = attrs.get("alpha", 1.67326319217681884765625)
    return [attrs.get("gamma", 1.05070102214813232421875) * F.elu(inputs[0], alpha)]


def _hard_sigmoid(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    return [torch.clamp(attrs.get("alpha", 0.2) * inputs[0] + attrs.get("beta", 0.5), 0, 1)]


def _scaler(attrs: dict[str, Any], inputs: Inputs) -> list[Tensor]:
    """ai.onnx.ml Scaler (skl2onnx's StandardScaler, MinMaxScaler): (x - offset) * scale."""
    x = inputs[0].float()
    offset, scale = x.new_tensor(attrs.get("offset", 0.0)), x.new_tensor(attrs.get("scale", 1.0))
    return [(x - offset) * scale]


OPS: dict[str, Op] = {
    # activations and elementwise maths
    **{
        name: _unary(fn)
        for name, fn in {
            "Relu": F.relu,
            "Sigmoid": torch.sigmoid,
            "Tanh": torch.tanh,
            "Softplus": F.softplus,
            "Softsign": F.softsign,
            "HardSwish": F.hardswish,
            "Mish": F.mish,
            "Erf": torch.erf,
            "Sqrt": torch.sqrt,
            "Reciprocal": torch.reciprocal,
            "Neg": torch.neg,
            "Exp": torch.exp,
            "Log": torch.log,
            "Abs": torch.abs,
            "Sign": torch.sign,
            "Floor": torch.floor,
            "Ceil": torch.ceil,
            "Sin": torch.sin,
            "Cos": torch.cos,
            "Not": torch.logical_not,
            "Identity": lambda x: x,
        }.items()
    },
    "LeakyRelu": lambda attrs, inputs: [F.leaky_relu(inputs[0], attrs.get("alpha", 0.01))],
    "Elu": lambda attrs, inputs: [F.elu(inputs[0], attrs.get("alpha", 1.0))],
    "Gelu": lambda attrs, inputs: [F.gelu(inputs[0], approximate=attrs.get("approximate", "none"))],
    "Selu": _selu,
    "HardSigmoid": _hard_sigmoid,
    "PRelu": _prelu,
    "Softmax": _softmax_like(torch.softmax),
    "LogSoftmax": _softmax_like(torch.log_softmax),
    **{
        name: _binary(fn)
        for name, fn in {
            "Add": torch.add,
            "Sub": torch.sub,
            "Mul": torch.mul,
            "Div": _div,
            "Pow": _pow,
            "MatMul": torch.matmul,
            "Equal": torch.eq,
            "Less": torch.lt,
            "LessOrEqual": torch.le,
            "Greater": torch.gt,
            "GreaterOrEqual": torch.ge,
            "And": torch.logical_and,
            "Or": torch.logical_or,
            "Xor": torch.logical_xor,
        }.items()
    },
    "Min": _variadic(torch.minimum),
    "Max": _variadic(torch.maximum),
    "Sum": _variadic(torch.add),
    "Mean": lambda attrs, inputs: [reduce(torch.add, inputs) / len(inputs)],
    "Clip": _clip,
    "Where": lambda attrs, inputs: [torch.where(inputs[0].bool(), inputs[1], inputs[2])],
    "Einsum": lambda attrs, inputs: [torch.einsum(attrs["equation"], *inputs)],
    # layers
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "BatchNormalization": _batch_norm,
    "InstanceNormalization": _instance_norm,
    "LayerNormalization": _layer_norm,
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global(torch.mean),
    "GlobalMaxPool": _global(torch.amax),
    "Dropout": _dropout,
    "Resize": _resize,
    # reductions
    "ReduceMean": _reduce(torch.mean),
    "ReduceSum": _reduce(torch.sum),
    "ReduceMax": _reduce(torch.amax),
    "ReduceMin": _reduce(torch.amin),
    # tensors and shapes
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Cast": _cast,
    "Shape": _shape,
    "Size": _size,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": lambda attrs, inputs: [torch.cat(inputs, dim=attrs["axis"])],
    "Split": _split,
    "Gather": _gather,
    "Slice": _slice,
    "Pad": _pad,
    "Expand": _expand,
    "Tile": lambda attrs, inputs: [inputs[0].repeat(_ints(inputs[1]))],
    "Range": _range,
    # other domains, keyed as `_op_key` names them
    "Scaler (ai.onnx.ml)": _scaler,
}


# the module ---------------------------------------------------------------------------------


class OnnxNode(torch.nn.Module):
    """One ONNX node as a submodule, so forward hooks (Grad-CAM's, the memory probe's) see
    its output: one tensor, or a tuple for a node with several outputs."""

    def __init__(self, op: str, attrs: dict[str, Any]) -> None:
        super().__init__()
        self.op, self.attrs = op, attrs  # op: the key in OPS

    def forward(self, *inputs: Tensor | None) -> Tensor | tuple[Tensor, ...]:
        results = OPS[self.op](self.attrs, list(inputs))
        return results[0] if len(results) == 1 else tuple(results)

    def extra_repr(self) -> str:
        return self.op


NN_ACTIVATIONS: dict[str, Callable[[], torch.nn.Module]] = {
    "Relu": torch.nn.ReLU,
    "Sigmoid": torch.nn.Sigmoid,
    "Tanh": torch.nn.Tanh,
}
"""Ops run as torch's own activation modules, which Captum recognises by type: guided
backpropagation hooks ReLUs, DeepLIFT applies its rescale rule to these three."""


class OnnxModule(torch.nn.Module):
    """An ONNX graph run node by node with torch; `forward` returns the graph's outputs, or
    the given `outputs` only: then only the nodes they need are kept (skl2onnx's label
    branch, say, whose ops have no torch equivalent, drops out).

    Each node is a submodule in `nodes`, keyed by its ONNX name made attribute-safe; every
    node module carries `op_type` and `onnx_names` (the node's name and its output names).
    """

    def __init__(self, proto: onnx.ModelProto, outputs: Sequence[str] | None = None) -> None:
        super().__init__()
        graph = proto.graph
        self.output_names = list(outputs or [o.name for o in graph.output])
        needed = _needed(graph, self.output_names)
        missing = _unsupported(needed)
        if missing:
            verb = "has" if len(missing) == 1 else "have"
            many = "s" * (len(missing) > 1)
            raise UnsupportedGraph(
                f"op{many} {', '.join(missing)} {verb} no torch equivalent in whybox"
            )
        if len(graph.sparse_initializer):
            raise UnsupportedGraph("sparse initializers have no torch equivalent in whybox")
        opset = next(
            (o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS),
            onnx.defs.onnx_opset_version(),
        )
        self.onnx_names: dict[str, str] = {}  # ONNX tensor name -> buffer name
        used = {name for node in needed for name in node.input} | set(self.output_names)
        for init in graph.initializer:
            if init.name in used:
                self._keep(init.name, _tensor(init))
        stored = {init.name for init in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in stored]
        self.nodes = torch.nn.ModuleDict()
        self.wiring: list[tuple[str, list[str], list[str]]] = []  # key, inputs, outputs
        for index, node in enumerate(needed):
            attrs = {a.name: _attribute(a) for a in node.attribute}
            attrs.update(_opset=opset, _outputs=len(node.output))
            if node.op_type == "Constant":
                self._keep(node.output[0], _constant(attrs, [])[0])
                continue
            make = NN_ACTIVATIONS.get(node.op_type)
            module = make() if make else OnnxNode(_op_key(node), attrs)
            module.op_type = node.op_type
            module.onnx_names = tuple(n for n in (node.name, *node.output) if n)
            key = _unique(re.sub(r"\W", "_", node.name or f"{node.op_type}_{index}"), self.nodes)
            self.nodes[key] = module
            self.wiring.append((key, list(node.input), list(node.output)))
        last_use = {name: i for i, (_, inputs, _) in enumerate(self.wiring) for name in inputs}
        last_use.update((name, len(self.wiring)) for name in self.output_names)
        self.drops = [
            [n for n in set(inputs) if n and last_use[n] == i]
            for i, (_, inputs, _) in enumerate(self.wiring)
        ]

    def _keep(self, name: str, tensor: Tensor) -> None:
        buffer = _unique("t_" + re.sub(r"\W", "_", name), self)
        self.register_buffer(buffer, tensor)
        self.onnx_names[name] = buffer

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise TypeError(
                f"the graph takes {len(self.input_names)} input(s) "
                f"({', '.join(self.input_names)}), not {len(inputs)}"
            )
        values: dict[str, Any] = {n: getattr(self, b) for n, b in self.onnx_names.items()}
        values.update(zip(self.input_names, inputs, strict=True))
        for (key, names, outputs), drops in zip(self.wiring, self.drops, strict=True):
            module = self.nodes[key]
            results = module(*[values[n] if n else None for n in names])
            results = results if isinstance(results, tuple) else (results,)
            if any(outputs[len(results) :]):
                raise NotImplementedError(
                    f"whybox computes only {len(results)} output(s) of {module.op_type}"
                )
            values.update((n, v) for n, v in zip(outputs, results, strict=False) if n)
            for name in drops:
                values.pop(name, None)
        return tuple(values[n] for n in self.output_names)


class FixedBatch(torch.nn.Module):
    """A graph exported with a fixed batch size (shapes baked into its constants) run on any
    batch: in slices of `fixed_batch` rows, the last padded with zeros, whose outputs are
    dropped (so they take no part in any gradient)."""

    def __init__(self, graph: torch.nn.Module, fixed_batch: int) -> None:
        super().__init__()
        self.graph, self.fixed_batch = graph, fixed_batch

    def forward(self, x: Tensor) -> Tensor:
        outputs = []
        for part in x.split(self.fixed_batch):
            rows = len(part)
            if rows < self.fixed_batch:
                part = torch.cat([part, part.new_zeros(self.fixed_batch - rows, *part.shape[1:])])
            outputs.append(self.graph(part)[:rows])
        return torch.cat(outputs)


def _unique(name: str, owner: torch.nn.Module) -> str:
    """`name`, or `name_1`, `name_2`, ... where `owner` has that attribute (a buffer, a
    submodule, a method)."""
    candidate, count = name, 1
    while hasattr(owner, candidate):
        candidate, count = f"{name}_{count}", count + 1
    return candidate


def _op_key(node: onnx.NodeProto) -> str:
    """The node's key in `OPS`: its op type, other domains' as 'op (domain)'."""
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.op_type} ({node.domain})"


def _needed(graph: onnx.GraphProto, outputs: Sequence[str]) -> list[onnx.NodeProto]:
    """The nodes that `outputs` depend on, in the graph's (topological) order."""
    wanted, kept = set(outputs), []
    for node in reversed(graph.node):
        if wanted.intersection(node.output):
            kept.append(node)
            wanted.update(node.input)
    return kept[::-1]


def _unsupported(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    return sorted({_op_key(node) for node in nodes} - OPS.keys())


def unsupported_ops(proto: onnx.ModelProto) -> list[str]:
    """The graph's op types that `OPS` lacks, other domains' shown as 'op (domain)'."""
    return _unsupported(proto.graph.node)


def convert(proto: onnx.ModelProto, outputs: Sequence[str] | None = None) -> torch.nn.Module:
    """The graph as a torch module: forward(*inputs) -> tuple of the graph's outputs (or of
    `outputs`, computing only what they need).

    Raises UnsupportedGraph (one line naming what is missing) for graphs it cannot express.
    """
    return OnnxModule(proto, outputs).eval()
