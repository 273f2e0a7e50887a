"""ONNX models as `Model`s: run by ONNX Runtime, and converted to torch (`onnx_graph`) where
the converted graph gives the same outputs, so that gradient methods can run through it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from whybox.model_zoo.chunks import PREDICT_BATCH_BYTES, chunk_slices
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.formats import first_line
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.model import TASKS, Model
from whybox.model_zoo.model_file import (
    META_CLASS_NAMES,
    META_FEATURE_NAMES,
    META_MODULE_OUTPUT,
    META_TASK,
    ModelFile,
    check_input_size,
    damaged,
    listed,
    meta_list,
)
from whybox.model_zoo.output_space import (
    MODULE_OUTPUTS,
    class_count,
    map_outputs,
    output_spaces_for,
)
from whybox.model_zoo.wrap import PROBE_SIDE

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

MAX_STATIC_BATCH_BYTES = 4 * PREDICT_BATCH_BYTES  # input bytes of one call to a fixed-batch graph
PROBE_ROWS = 7  # rows of the random batch that checks an ONNX graph converted to torch
CONVERSION_TOLERANCE = 1e-4
# ONNX ops that pass values through unchanged in meaning, skipped when asking what made an output.
ONNX_PASS_THROUGH = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast"}
ONNX_PROBABILITY_TRANSFORMS = {"SOFTMAX", "SOFTMAX_ZERO", "LOGISTIC"}  # ai.onnx.ml post_transform


def _onnx_tensors(proto: Any) -> Iterator[Any]:
    """Every tensor an ONNX model stores: initializers, constants, subgraphs', functions'."""

    def in_nodes(nodes: Sequence[Any]) -> Iterator[Any]:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                for sparse in [attr.sparse_tensor, *attr.sparse_tensors]:
                    yield from (sparse.values, sparse.indices)
                for graph in [attr.g, *attr.graphs]:
                    yield from in_graph(graph)

    def in_graph(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        yield from in_nodes(graph.node)

    yield from in_graph(proto.graph)
    for function in proto.functions:
        yield from in_nodes(function.node)


def _probability_like(graph: Any, output: str) -> bool:
    """Whether the graph makes `output` with a Softmax/Sigmoid (or names it a probability)."""
    if "prob" in output.lower():
        return True
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get(output)
    while node is not None and node.op_type in ONNX_PASS_THROUGH and node.input:
        node = producers.get(node.input[0])
    if node is None:
        return False
    if node.op_type in ("Softmax", "Sigmoid"):
        return True
    return any(
        a.name == "post_transform" and a.s.decode() in ONNX_PROBABILITY_TRANSFORMS
        for a in node.attribute
    )


def _onnx_meaning(
    meta: dict[str, str], width: int, probability_like: bool, name: str
) -> tuple[str, list[str]]:
    """What the chosen output means (a MODULE_OUTPUTS value) and notes on how that was decided."""
    task, declared = meta.get(META_TASK), meta.get(META_MODULE_OUTPUT)
    if task is not None and task not in TASKS:
        raise WhyboxError(f"the metadata {META_TASK} is {task!r}; use one of {', '.join(TASKS)}")
    if declared is not None and declared not in MODULE_OUTPUTS:
        raise WhyboxError(
            f"the metadata {META_MODULE_OUTPUT} is {declared!r}; "
            f"use one of {', '.join(MODULE_OUTPUTS)}"
        )
    notes: list[str] = []
    if declared is not None:
        meaning = declared
    elif task == "regression" or (task is None and width == 1):
        meaning = "value"
        if task is None and probability_like:
            notes.append(
                "the single output looks like a probability but is read as a regression value; "
                f"set the ONNX metadata {META_TASK}=classification if it is a class probability"
            )
    elif probability_like:
        meaning = "probability"
    else:
        meaning = "logit" if width == 1 else "logits"
    if declared is None and task is None:
        notes.append(f"no whybox metadata in the ONNX file; its output was read as {meaning}")
    if (meaning == "logit" and width != 1) or (meaning == "logits" and width < 2):
        raise WhyboxError(
            f"{name!r} declares its output as {meaning} but the output has {width} column(s); "
            f"fix the metadata {META_MODULE_OUTPUT}"
        )
    if task is not None and (task == "regression") != (meaning == "value"):
        raise WhyboxError(
            f"{name!r} declares task {task} but output {meaning}; fix the whybox metadata"
        )
    return meaning, notes


def load_onnx(file: ModelFile, key: str) -> Model:
    import onnx

    try:
        proto = onnx.load_from_string(file.raw)
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors
        raise damaged(file, key, exc) from None
    external = [t.name or "(unnamed)" for t in _onnx_tensors(proto) if _is_external(t)]
    if external:
        raise WhyboxError(
            f"{file.name!r} keeps tensor(s) {listed(external)} in external data files, which "
            "whybox never reads; save the model as a single file (torch.onnx.export(..., "
            "external_data=False); onnx.save_model(model, path, save_as_external_data=False))"
        )
    graph = proto.graph
    raw = proto.SerializeToString() if _open_dims(graph) else file.raw
    stored = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in stored]
    if _takes_columns(inputs):
        return _load_onnx_columns(file, key, proto, raw, inputs)
    dims = inputs[0].type.tensor_type.shape.dim if len(inputs) == 1 else []
    if len(dims) not in (2, 4):
        raise WhyboxError(
            f"{file.name!r} is an ONNX model with {len(inputs)} input(s) of another shape; whybox "
            "explains models with one float input of (rows, features) or (images, C, H, W)"
        )
    input_shape = tuple(d.dim_value for d in dims[1:])  # 0: dynamic
    static_batch = dims[0].dim_value
    check_input_size(input_shape, file.name)
    batch_bytes = static_batch * math.prod(side or PROBE_SIDE for side in input_shape) * 4
    if batch_bytes > MAX_STATIC_BATCH_BYTES:
        raise WhyboxError(
            f"{file.name!r} has a fixed batch of {static_batch:,} inputs "
            f"({batch_bytes / 2**20:,.0f} MiB per call); export it with a dynamic batch "
            "dimension (torch.onnx.export(..., dynamic_axes=...))"
        )
    dtype = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}.get(
        inputs[0].type.tensor_type.elem_type
    )
    if not input_shape[0] or dtype is None:
        raise WhyboxError(
            f"{file.name!r} needs a float input with a fixed number of "
            f"{'features' if len(dims) == 2 else 'channels'}; export it with that dimension "
            "fixed and a float32 input"
        )
    session, output = _session(raw, file, key)
    run = _onnx_runner(session, inputs[0].name, output, dtype, static_batch)
    # Not a multiple of a fixed batch: the converted graph is checked on a batch it was not
    # exported for (shapes baked into its constants show there).
    rows = PROBE_ROWS + (static_batch == PROBE_ROWS)
    probe_shape = (rows, *(side or PROBE_SIDE for side in input_shape))
    rng = np.random.default_rng(0)
    probe = rng.normal(size=probe_shape) if len(dims) == 2 else rng.uniform(size=probe_shape)
    try:
        expected = run(probe).reshape(len(probe), -1)
    except WhyboxError as exc:
        raise WhyboxError(f"{file.name!r}: {exc}") from None
    except Exception as exc:  # onnxruntime errors on graphs it cannot run
        raise WhyboxError(f"onnxruntime could not run {file.name!r}: {first_line(exc)}") from None
    width = expected.shape[1]
    meta = {p.key: p.value for p in proto.metadata_props}
    meaning, notes = _onnx_meaning(meta, width, _probability_like(graph, output), file.name)
    task = "regression" if meaning == "value" else "classification"
    n_classes = class_count(meaning, width)
    class_names = meta_list(meta, META_CLASS_NAMES, n_classes, "classes")
    if task == "classification" and class_names is None:
        class_names = [str(i) for i in range(n_classes)]
    module, failure = _onnx_to_torch(proto, output, probe, expected, dtype, static_batch)
    if failure:
        notes.append(f"gradient methods are unavailable for this ONNX model: {failure}")

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        return map_outputs(run(X), meaning, space)

    image = len(dims) == 4
    n_features = int(np.prod(input_shape))
    return Model(
        name=file.name,
        format=key,
        kind="onnx",
        task=task,
        n_features=n_features,
        modality="image" if image else "tabular",
        input_shape=input_shape,
        feature_names=None
        if image
        else meta_list(meta, META_FEATURE_NAMES, n_features, "features"),
        class_names=class_names,
        output_spaces=output_spaces_for(meaning),
        sha256=file.sha256,
        native=session,
        predict_fn=None if module is not None else predict,
        module=module,
        module_output=meaning if module is not None else None,
        notes=notes,
    )


def _open_dims(graph: Any) -> bool:
    """Make every dimension of the graph's inputs, outputs and value_info declared as -1 or 0
    (paddle2onnx, tf2onnx, older torch exporters) symbolic, as exporters mean it: dynamic.
    onnxruntime reads -1 as dynamic but 0 as a fixed size of zero. Returns whether any was."""
    changed = False
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.WhichOneof("value") == "dim_value" and dim.dim_value <= 0:
                dim.dim_param, changed = f"{value.name}_dynamic_{axis}", True
    return changed


def _takes_columns(inputs: Sequence[Any]) -> bool:
    """Whether the graph takes a table as one input per column, (rows, 1) or (rows,) each,
    as skl2onnx exports a pipeline on a data frame (text columns as string tensors)."""
    from onnx import TensorProto

    def column(value: Any) -> bool:
        dims = value.type.tensor_type.shape.dim
        return len(dims) == 1 or (len(dims) == 2 and dims[1].dim_value == 1)

    strings = any(i.type.tensor_type.elem_type == TensorProto.STRING for i in inputs)
    return (len(inputs) > 1 or strings) and all(column(i) for i in inputs)


def _input_categories(graph: Any, name: str) -> tuple[list[str], str | None] | None:
    """The categories of a string input, from the ai.onnx.ml encoder reading it (through
    pass-through ops), and what that encoder makes of an unseen one (None: it refuses)."""
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    pending = [name]
    while pending:
        for node in readers.get(pending.pop(), []):
            attributes = {a.name: a for a in node.attribute}
            if node.op_type == "OneHotEncoder" and "cats_strings" in attributes:
                unseen = "all zeros in its one-hot columns"
                zeros = attributes.get("zeros")
                return [c.decode() for c in attributes["cats_strings"].strings], (
                    unseen if zeros is None or zeros.i else None
                )
            if node.op_type == "LabelEncoder" and "keys_strings" in attributes:
                keys = [k.decode() for k in attributes["keys_strings"].strings]
                return keys, "its encoder's default value"
            if node.op_type in ONNX_PASS_THROUGH:
                pending.extend(node.output)
    return None


def _load_onnx_columns(file: ModelFile, key: str, proto: Any, raw: bytes, inputs: list) -> Model:
    """A graph taking one input per column: the columns by name, text ones as categories
    (named by the graph's encoders), evaluated with onnxruntime only (no gradients)."""
    from onnx import TensorProto

    from whybox.model_zoo.categories import names as category_names

    numeric = {
        TensorProto.FLOAT: np.float32,
        TensorProto.DOUBLE: np.float64,
        TensorProto.INT64: np.int64,
        TensorProto.INT32: np.int32,
    }
    categories: dict[str, list[str]] = {}
    unseen: dict[str, str | None] = {}
    for value in inputs:
        kind = value.type.tensor_type.elem_type
        if kind == TensorProto.STRING:
            found = _input_categories(proto.graph, value.name)
            if found is None:
                raise WhyboxError(
                    f"{file.name!r}: the text input {value.name!r} feeds no OneHotEncoder or "
                    "LabelEncoder whose categories whybox can read; encode it in the exported "
                    "pipeline"
                )
            categories[value.name], unseen[value.name] = found
        elif kind not in numeric:
            raise WhyboxError(
                f"{file.name!r}: input {value.name!r} is neither text nor a number; whybox "
                "explains columns of numbers and text"
            )
    session, output = _session(raw, file, key)

    def run(X: np.ndarray) -> np.ndarray:
        feed = {}
        for j, value in enumerate(inputs):
            column = X[:, j]
            if value.name in categories:
                column = category_names(categories[value.name], column).astype(str)
            else:
                column = column.astype(numeric[value.type.tensor_type.elem_type])
            rank = len(value.type.tensor_type.shape.dim)
            feed[value.name] = column.reshape(-1, 1) if rank == 2 else column
        out = np.asarray(session.run([output], feed)[0], dtype=np.float64)
        return out.reshape(len(X), -1)

    try:
        width = run(np.zeros((PROBE_ROWS, len(inputs)))).shape[1]
    except Exception as exc:  # onnxruntime errors on graphs it cannot run
        raise WhyboxError(f"onnxruntime could not run {file.name!r}: {first_line(exc)}") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    meaning, notes = _onnx_meaning(meta, width, _probability_like(proto.graph, output), file.name)
    notes.append("gradient methods are unavailable: the graph takes its columns as separate inputs")
    task = "regression" if meaning == "value" else "classification"
    class_names = meta_list(meta, META_CLASS_NAMES, class_count(meaning, width), "classes")
    if task == "classification" and class_names is None:
        class_names = [str(i) for i in range(class_count(meaning, width))]
    return Model(
        name=file.name,
        format=key,
        kind="onnx",
        task=task,
        n_features=len(inputs),
        feature_names=[value.name for value in inputs],
        class_names=class_names,
        output_spaces=output_spaces_for(meaning),
        sha256=file.sha256,
        native=session,
        categories=categories,
        unseen=unseen,
        predict_fn=lambda X, space: map_outputs(run(X), meaning, space),
        notes=notes,
    )


def _is_external(tensor: Any) -> bool:
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _session(raw: bytes, file: ModelFile, key: str) -> tuple[Any, str]:
    """An onnxruntime session of the graph, and the name of the output to explain."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise damaged(file, key, exc) from None
    return session, _onnx_output(session, file.name)


def _onnx_output(session: Any, name: str) -> str:
    """The output to explain: a float tensor, preferring one named like a probability."""
    outputs = session.get_outputs()
    for out in outputs:
        if "prob" in out.name.lower() and not out.type.startswith("tensor("):
            raise WhyboxError(
                f"{name!r} gives its probabilities as a ZipMap (a list of dicts); export the "
                "classifier with zipmap disabled (skl2onnx: options={'zipmap': False})"
            )
    floats = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
    if not floats:
        raise WhyboxError(f"{name!r} has no float tensor output to explain")
    return next((o.name for o in floats if "prob" in o.name.lower()), floats[0].name)


def _onnx_runner(
    session: Any, input_name: str, output: str, dtype: type, static_batch: int
) -> Callable[[np.ndarray], np.ndarray]:
    """The graph's output for a batch of inputs, which `Model.predict` keeps within its
    budget; a graph with a fixed batch size gets padded batches of that size."""

    def call(batch: np.ndarray) -> np.ndarray:
        out = np.asarray(session.run([output], {input_name: np.ascontiguousarray(batch)})[0])
        if out.ndim == 0 or len(out) != len(batch):
            raise WhyboxError(
                f"the graph gives {1 if out.ndim == 0 else len(out)} output row(s) for "
                f"{len(batch)} inputs; whybox needs one per input: export it with a batch "
                "dimension"
            )
        return out.reshape(len(batch), -1)

    def run(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=dtype)
        if not static_batch:
            return call(X)
        outputs = []
        for rows in chunk_slices(len(X), static_batch):
            batch = X[rows]
            if len(batch) < static_batch:
                padding = np.zeros((static_batch - len(batch), *X.shape[1:]), dtype=dtype)
                batch = np.concatenate([batch, padding])
            outputs.append(call(batch)[: rows.stop - rows.start])
        return np.concatenate(outputs)

    return run


def _onnx_to_torch(
    proto: Any,
    output: str,
    probe: np.ndarray,
    expected: np.ndarray,
    dtype: type,
    static_batch: int,
) -> tuple[torch.nn.Module | None, str | None]:
    """A torch module computing `output`, equal to the graph's on a random batch, or None
    and the reason. Only the nodes `output` needs are converted. A graph with a fixed batch
    that gives other outputs on other batch sizes runs in slices of its batch (`FixedBatch`).

    `probe` is a batch of the graph's one input, of any rank ((rows, features), (n, C, H, W)).
    """
    if dtype is not np.float32:
        return None, "its input is float64; export it with a float32 input"
    from whybox.model_zoo.modules import OnnxOutput
    from whybox.model_zoo.onnx_graph import FixedBatch, UnsupportedGraph, convert

    try:
        module = OnnxOutput(convert(proto, [output]), 0).eval()
    except UnsupportedGraph as exc:
        return None, f"whybox cannot convert the graph to torch ({exc})"
    failure = _differs(module, probe, expected)
    if failure and static_batch:
        module = FixedBatch(module, static_batch).eval()
        failure = _differs(module, probe, expected)
    return (None, failure) if failure else (module, None)


def _differs(module: torch.nn.Module, probe: np.ndarray, expected: np.ndarray) -> str | None:
    """Why `module`'s outputs on `probe` are not `expected` (onnxruntime's), or None."""
    try:
        with torch.no_grad():
            got = module(torch.from_numpy(np.ascontiguousarray(probe, dtype=np.float32)))
        got = got.double().numpy().reshape(expected.shape)
    except Exception as exc:  # an op torch rejects for this graph's shapes or attributes
        return f"the graph could not run as torch ({first_line(exc)})"
    close = np.allclose(
        got, expected, rtol=CONVERSION_TOLERANCE, atol=CONVERSION_TOLERANCE, equal_nan=True
    )
    if not close:
        gap = float(np.nanmax(np.abs(got - expected)))
        return f"the graph converted to torch differs from onnxruntime by up to {gap:.3g}"
    return None
