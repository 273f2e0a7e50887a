"""A corpus of hostile and malformed files, generated here (never downloaded).

`write_corpus(directory)` writes every file and returns one `Case` per file: which input it
goes to ("model"; "data", the table for demo:credit-xgboost; "images", for IMAGE_MODEL, an
untrained network of demo:digits-cnn's architecture and input size, written beside them) and either the regex its one-line error must match or, for files that must load, the
values they must load as. Files that would run code when loaded create a marker file
beside them if they ever do. Bombs are small files that claim huge sizes.

    python tests/hostile/make_corpus.py DIR    # writes the corpus and lists the cases
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL, DATA, IMAGES = "model", "data", "images"
SAFE_SUFFIXES = (".json", ".onnx", ".safetensors", ".skops", ".ubj", ".txt")
CREDIT_ROWS = 5  # rows of the credit demo the tables are made from
GIB = 2**30
RUNS_CODE = "can run code when loaded, so it was not opened"
IMAGE_MODEL = "digits-cnn.safetensors"


@dataclass(frozen=True)
class Case:
    """One corpus file. `error` is the regex its one-line error must match; None means the
    file must load, as `expected` (feature values in the model's order, NaN allowed), with a
    note matching `note`. `marker` is the file that exists only if the file's code ran."""

    name: str
    target: str
    error: str | None = None
    marker: str | None = None
    expected: tuple[tuple[float, ...], ...] | None = None
    note: str | None = None
    upload: bool = True  # False for what a browser cannot upload (a folder)
    settings: tuple[tuple[str, str], ...] = ()  # operator settings (environment) while it loads


class RunsCode:
    """Unpickling this creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def write_corpus(directory: str | Path) -> list[Case]:
    """Write the corpus into `directory` (created if needed) and return its cases."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cases = []
    for family in (_code_cases, _skops_cases, _model_cases, _table_cases, _image_cases):
        for case, content in family(directory):
            path = directory / (case if isinstance(case, str) else case.name)
            if isinstance(content, Path):  # a symlink to make
                path.unlink(missing_ok=True)
                path.symlink_to(content)
            elif isinstance(content, dict):  # a folder of files or symlinks
                path.mkdir(exist_ok=True)
                for member, target in content.items():
                    (path / member).unlink(missing_ok=True)
                    (path / member).symlink_to(target)
            else:
                path.write_bytes(content.encode() if isinstance(content, str) else content)
            if isinstance(case, Case):
                cases.append(case)
    return cases


# What a family of cases yields: a case (or the bare name of a file that a case refers to)
# and its content: bytes or text, a Path to link to, or a folder's {name: Path to link to}.
Written = Iterator[tuple[Case | str, bytes | str | Path | dict]]

# Files that run code when loaded -------------------------------------------------------------


def _joblib(obj: object, compress: object = 0) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(obj, buffer, compress=compress)
    return buffer.getvalue()


def _torch(obj: object, zipped: bool = True) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=zipped)
    return buffer.getvalue()


def _add_member(archive: bytes, member: str, content: bytes) -> bytes:
    buffer = io.BytesIO(archive)
    with zipfile.ZipFile(buffer, "a") as handle:
        handle.writestr(member, content)
    return buffer.getvalue()


CODE_PAYLOADS: dict[str, tuple[Callable[[RunsCode], bytes], str]] = {
    # name: (bytes of a file whose loading runs RunsCode, what the refusal calls it)
    "pickle5.pkl": (lambda p: pickle.dumps(p, protocol=5), "a pickle file"),
    "pickle0.txt": (lambda p: pickle.dumps(p, protocol=0), "a pickle file"),
    "pickle2.bin": (lambda p: pickle.dumps(p, protocol=2), "a pickle file"),
    "joblib.joblib": (_joblib, "a pickle file"),  # joblib without arrays writes a plain pickle
    "joblib-zlib.json": (lambda p: _joblib(p, ("zlib", 3)), "a joblib file"),
    "joblib-gzip.onnx": (lambda p: _joblib(p, ("gzip", 3)), "a joblib file"),
    "joblib-bz2.ubj": (lambda p: _joblib(p, ("bz2", 3)), "a joblib file"),
    "joblib-xz.safetensors": (lambda p: _joblib(p, ("xz", 3)), "a joblib file"),
    "joblib-lzma.skops": (lambda p: _joblib(p, ("lzma", 3)), "a joblib file"),
    "torch.pt": (lambda p: _torch({"model": p}), "a full torch.save checkpoint"),
    "torch.safetensors": (lambda p: _torch({"model": p}), "a full torch.save checkpoint"),
    "torch-legacy.onnx": (
        lambda p: _torch({"model": p}, zipped=False),
        "a full torch.save checkpoint",
    ),
}


def _code_cases(directory: Path) -> Written:
    pickled = [(f"pickle{suffix}", CODE_PAYLOADS["pickle5.pkl"]) for suffix in SAFE_SUFFIXES]
    for name, (make, label) in [*CODE_PAYLOADS.items(), *pickled]:
        marker = f"{name}.ran"
        error = f"^'{name}' is {label}.*{RUNS_CODE}"
        yield Case(name, MODEL, error, marker=marker), make(RunsCode(directory / marker))
    # an object array in a .npy image file is a pickle too
    marker = "object-array.npy.ran"
    buffer = io.BytesIO()
    np.save(buffer, np.array([RunsCode(directory / marker)], dtype=object), allow_pickle=True)
    error = "holds Python objects, which are refused because loading them could run code"
    yield Case("object-array.npy", IMAGES, error, marker=marker), buffer.getvalue()


# skops files naming types outside the trusted list -------------------------------------------


def _skops_cases(directory: Path) -> Written:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    untrusted = "holds type\\(s\\) whybox does not trust: .*{}"
    shell = functools.partial(os.system, "echo pwned")  # skops would call it on transform
    yield (
        Case("skops-system.skops", MODEL, untrusted.format("system")),
        sio.dumps(FunctionTransformer(func=shell)),
    )
    yield (
        Case("skops-eval.skops", MODEL, untrusted.format("builtins.eval")),
        sio.dumps(FunctionTransformer(func=eval)),
    )
    # a schema edited by hand to name a type no estimator has
    archive = io.BytesIO(sio.dumps(FunctionTransformer()))
    with zipfile.ZipFile(archive) as handle:
        members = {n: handle.read(n) for n in handle.namelist()}
    schema = json.loads(members["schema.json"])
    schema.update({"__class__": "Popen", "__module__": "subprocess"})
    members["schema.json"] = json.dumps(schema).encode()
    yield (
        Case("skops-popen.skops", MODEL, untrusted.format("subprocess.Popen")),
        _zip(list(members.items())),
    )
    # a skops archive whose schema claims 3 GiB uncompressed
    raw = _declare_size(sio.dumps(FunctionTransformer()), "schema.json", 3 * GIB)
    yield (
        Case("skops-bomb.skops", MODEL, "unpacks to 3,072 MB, more than .* WHYBOX_MAX_UNPACKED_MB"),
        raw,
    )


# Other hostile model files -------------------------------------------------------------------


def _onnx(inputs: list, nodes: list, initializers: list | None = None) -> bytes:
    from onnx import TensorProto, helper

    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    graph = helper.make_graph(nodes, "g", inputs, [output], initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def _external_onnx(location: str, in_constant: bool = False) -> bytes:
    """A linear model whose weights live in an external file at `location`."""
    from onnx import TensorProto, helper

    weights = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 1])
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value=location)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    if in_constant:  # the tensor hides in a Constant node's attribute, not the initializers
        nodes = [
            helper.make_node("Constant", [], ["w"], value=weights),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ]
        return _onnx([x], nodes)
    return _onnx([x], [helper.make_node("MatMul", ["x", "w"], ["y"])], [weights])


def _model_cases(directory: Path) -> Written:
    from onnx import TensorProto, helper

    from whybox.model_zoo.architectures import SmallCNN
    from whybox.model_zoo.safetensors_models import save_safetensors

    # a torch checkpoint that also holds a skops schema (torch cannot load it then: its code
    # never runs, but whybox must still call it a checkpoint, not skops)
    yield (
        Case("torch-with-schema.skops", MODEL, f"is a full torch.save checkpoint.*{RUNS_CODE}"),
        _add_member(_torch({"model": RunsCode(directory / "never")}), "schema.json", b"{}"),
    )
    external = "keeps tensor\\(s\\) w in external data files, which whybox never reads"
    outside = Path("/etc/passwd")
    yield Case("external-parent.onnx", MODEL, external), _external_onnx("../../secret.bin")
    yield Case("external-absolute.onnx", MODEL, external), _external_onnx(str(outside))
    yield Case("external-constant.onnx", MODEL, external), _external_onnx("../w.bin", True)
    # the external file sits beside the model, but is a symlink out of the folder
    yield Case("external-symlink.onnx", MODEL, external), _external_onnx("weights.bin")
    yield "weights.bin", outside  # not a case: the file the model above names
    # the model file itself is a symlink to a pickle wearing a safe suffix
    yield (
        Case(
            "symlink-to-pickle.onnx",
            MODEL,
            f"'symlink-to-pickle.onnx' is a pickle.*{RUNS_CODE}",
            marker="pickle.onnx.ran",
        ),
        directory / "pickle.onnx",
    )
    # a network declaring absurd input sizes: probing it would allocate terabytes
    image = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 100_000, 100_000])
    pooled = [
        helper.make_node("GlobalAveragePool", ["x"], ["p"]),
        helper.make_node("Flatten", ["p"], ["y"]),
    ]
    yield (
        Case("huge-image.onnx", MODEL, "100000x100000 = 10,000,000,000 pixels.*limit"),
        _onnx([image], pooled),
    )
    total = [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=1)]
    for name, dims, error in (
        ("huge-features.onnx", ["N", 2_000_000_000], "takes 2,000,000,000 features, more than"),
        ("huge-batch.onnx", [1_000_000_000, 4], "fixed batch of 1,000,000,000 inputs"),
        # a negative size reads as dynamic, as exporters mean it; the sum has no batch
        (
            "negative-size.onnx",
            [-7, 4],
            "gives 1 output row.s. for 7 inputs; whybox needs one per input",
        ),
    ):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
        yield Case(name, MODEL, error), _onnx([x], total)
    config = {"in_channels": 1, "num_classes": 2, "image_size": [100_000, 100_000]}
    yield (
        Case("huge-image.safetensors", MODEL, "100000x100000 = 10,000,000,000 pixels.*limit"),
        save_safetensors(SmallCNN(**config), "small-cnn", config, "logits"),
    )
    header = json.dumps({"w": {"dtype": "F32", "shape": [100_000] * 3, "data_offsets": [0, 4]}})
    yield (
        Case("absurd-shape.safetensors", MODEL, "looks like a safetensors file but could not"),
        struct.pack("<Q", len(header)) + header.encode() + bytes(4),
    )
    deep = 100_000
    yield (
        Case("deep.json", MODEL, "JSON file nested too deeply"),
        '{"a": ' + "[" * deep + "]" * deep + "}",
    )
    yield (
        Case("deep-learner.json", MODEL, "looks like an XGBoost JSON model but could not be read"),
        '{"learner": ' + "[" * deep + "]" * deep + "}",
    )
    yield Case("empty.onnx", MODEL, "'empty.onnx' is empty"), b""
    yield (
        Case(
            "hang-loop.onnx",
            MODEL,
            "'hang-loop.onnx' was stopped after 10 s, the limit set by WHYBOX_LOAD_TIMEOUT",
            settings=(("WHYBOX_LOAD_TIMEOUT", "10"),),
        ),
        _hanging_onnx(),
    )
    yield (
        Case("memory-bomb.onnx", MODEL, "more memory than the limit of .* WHYBOX_LOAD_MEMORY_MB"),
        _memory_bomb_onnx(),
    )


def _hanging_onnx() -> bytes:
    """A model whose Loop runs 2^62 times: the first prediction never ends."""
    from onnx import TensorProto, helper

    def scalar(name: str, kind: int, shape: list | None = None) -> object:
        return helper.make_tensor_value_info(name, kind, shape)

    body = helper.make_graph(
        [
            helper.make_node("Identity", ["go_in"], ["go_out"]),
            helper.make_node("Identity", ["v_in"], ["v_out"]),
        ],
        "body",
        [
            scalar("i", TensorProto.INT64, []),
            scalar("go_in", TensorProto.BOOL, []),
            scalar("v_in", TensorProto.FLOAT),
        ],
        [scalar("go_out", TensorProto.BOOL, []), scalar("v_out", TensorProto.FLOAT)],
    )
    trips = helper.make_tensor("trips", TensorProto.INT64, [], [2**62])
    go = helper.make_tensor("go", TensorProto.BOOL, [], [True])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1),
        helper.make_node("Constant", [], ["trips"], value=trips),
        helper.make_node("Constant", [], ["go"], value=go),
        helper.make_node("Loop", ["trips", "go", "s"], ["y"], body=body),
    ]
    return _onnx([x], nodes)


def _memory_bomb_onnx() -> bytes:
    """A 300-byte model that asks for 12 GiB: a constant of shape (3, 2^30) summed."""
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, 2**30])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    nodes = [
        helper.make_node("Constant", [], ["shape"], value=shape),
        helper.make_node("ConstantOfShape", ["shape"], ["big"], value=one),
        helper.make_node("ReduceSum", ["big"], ["b"], keepdims=0),
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1),
        helper.make_node("Add", ["s", "b"], ["y"]),
    ]
    return _onnx([x], nodes)


# Tables for the credit demo ----------------------------------------------------------------


def credit_rows() -> tuple[list[str], list[list[float]]]:
    """The credit demo's feature names (the model's order) and its first rows."""
    import pandas as pd

    from whybox.model_zoo import demos

    frame = pd.read_csv(demos.data_path("credit")).drop(columns=demos.DEMO_DATA["credit"].label)
    return list(frame.columns), frame.head(CREDIT_ROWS).to_numpy(dtype=float).tolist()


def _csv(header: list[str], rows: list[list], sep: str = ",") -> str:
    return "".join(sep.join(map(str, line)) + "\n" for line in [header, *rows])


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _table_cases(directory: Path) -> Written:
    names, rows = credit_rows()
    text = [[_num(v) for v in row] for row in rows]
    good = tuple(map(tuple, rows))
    income, debt = names.index("Income"), names.index("Debt")

    def column(index: int, values: list[str]) -> list[list[str]]:
        return [[*r[:index], v, *r[index + 1 :]] for r, v in zip(text, values, strict=True)]

    yield (
        Case(
            "missing-columns.csv", DATA, "lacks the model's feature column\\(s\\) 'Income', 'Debt'"
        ),
        _csv(
            [n for n in names if n not in ("Income", "Debt")],
            [[v for i, v in enumerate(r) if i not in (income, debt)] for r in text],
        ),
    )
    yield (
        Case("extra-columns.csv", DATA, expected=good, note="ignored .*'Status', 'Comment'"),
        _csv([*names, "Status", "Comment"], [[*r, "good", "fine"] for r in text]),
    )
    yield (
        Case(
            "too-many-rows.csv",
            DATA,
            "has 5 rows, more than the limit of 3 set by WHYBOX_MAX_ROWS",
            settings=(("WHYBOX_MAX_ROWS", "3"),),
        ),
        _csv(names, text),
    )
    yield (
        Case(
            "too-big.csv",
            DATA,
            "'too-big.csv' is 1.[0-9] MB, more than the limit of 1 MB set by WHYBOX_MAX_UPLOAD_MB",
            settings=(("WHYBOX_MAX_UPLOAD_MB", "1"),),
        ),
        _csv(names, text * 8000),
    )
    yield (
        Case("duplicated-column.csv", DATA, "duplicated column name\\(s\\) 'Income'"),
        _csv([*names, " Income"], [[*r, "1"] for r in text]),
    )
    order = names[::-1]
    yield (
        Case("reordered-columns.csv", DATA, expected=good),
        _csv(order, [r[::-1] for r in text]),
    )
    holes = ["", "NA", "NaN", text[3][income], "null"]  # one value left: not an empty column
    with_nan = [list(r) for r in rows]
    for i in (0, 1, 2, 4):
        with_nan[i][income] = np.nan
    yield (
        Case("missing-values.csv", DATA, expected=tuple(map(tuple, with_nan))),
        _csv(names, column(income, holes)),
    )
    yield (
        Case("infinity.csv", DATA, "infinite values in column\\(s\\) 'Income'"),
        _csv(names, column(income, ["inf", "-inf", "Infinity", "1e999", "1"])),
    )
    yield (
        Case("text-in-numbers.csv", DATA, "non-numeric values in column\\(s\\) 'Income'"),
        _csv(names, column(income, ["high", "1", "2", "=cmd|' /C calc'!A0", "3"])),
    )
    yield Case("empty.csv", DATA, "'empty.csv' is empty"), b""
    yield Case("blank.csv", DATA, "'blank.csv' is empty"), b" \n\r\n\t\n"
    yield Case("header-only.csv", DATA, "has a header but no data rows"), _csv(names, [])
    garbage = np.random.default_rng(0).bytes(4096)
    yield Case("garbage.csv", DATA, "looks binary, not CSV text"), garbage
    high = bytes(np.random.default_rng(1).integers(0x80, 0x100, 4096, dtype=np.uint8))
    yield Case("garbage-high-bytes.csv", DATA, "looks binary, not CSV text"), high
    yield (
        Case("png-as.csv", DATA, "is a PNG image, but this model takes a table"),
        _png(8, 8, bytes(8 * 9)),
    )
    yield (
        Case("zip-as.csv", DATA, "is a zip archive, but this model takes a table"),
        _zip([("a.csv", _csv(names, text).encode())]),
    )
    yield (
        Case(
            "bomb.csv.gz",
            DATA,
            "unpacks to more than the limit of 1 MB set by WHYBOX_MAX_UNPACKED_MB",
            settings=(("WHYBOX_MAX_UNPACKED_MB", "1"),),
        ),
        gzip.compress(_csv(names, text).encode() + bytes(2 * 2**20)),
    )
    # as Excel writes formatted cells in most of Europe: 1.658 (thousands), 129,0 (decimal)
    european = [
        [f"{v:,.1f}" if i == income else f"{v:,.0f}" for i, v in enumerate(row)] for row in rows
    ]
    european = [[v.translate(str.maketrans(",.", ".,")) for v in row] for row in european]
    yield (
        Case("excel-europe.csv", DATA, expected=good, note="decimal comma"),
        _csv(names, european, sep=";").encode("cp1252"),
    )
    yield (
        Case("ragged-rows.csv", DATA, "could not be parsed: Error tokenizing data"),
        _csv(names, [text[0], [*text[1], "1", "2"]]),
    )
    yield (
        Case("unterminated-quote.csv", DATA, "could not be parsed"),
        _csv(names, text[:1]) + '"' + ",".join(text[1]),
    )
    yield (
        Case("damaged.parquet", DATA, "Parquet file 'damaged.parquet' could not be read"),
        (b"PAR1" + bytes(64) + b"PAR1"),
    )
    # other text encodings load, their non-ASCII header decoded (the column is ignored)
    accented = _csv([*names, "Größe"], [[*r, "Élodie"] for r in text])
    for name, encoding in (
        ("utf-16.csv", "utf-16"),
        ("utf-16-be.csv", "utf-16-be"),  # no byte-order mark
        ("utf-16-le.csv", "utf-16-le"),
        ("utf-8-bom.csv", "utf-8-sig"),
        ("latin-1.csv", "latin-1"),
        ("semicolons-cp1252.csv", "cp1252"),
    ):
        content = accented.replace(",", ";") if "semicolons" in name else accented
        yield Case(name, DATA, expected=good, note="'Größe'"), content.encode(encoding)
    filler = [f"x{i:06d}" for i in range(100_000 - len(names))]
    yield (
        Case("wide.csv", DATA, "100,000 columns, more than the limit of 10,000 set by WHYBOX_MAX_"),
        _csv([*names, *filler], [[*text[0], *["1"] * len(filler)]]),
    )
    yield (  # one line of 10 MiB: a value
        Case("long-line.csv", DATA, "column\\(s\\) 'Income' \\('xxxxxx.*xxx' in row 0, 1 row"),
        _csv(names, column(income, ["x" * 10 * 2**20, *(r[income] for r in text[1:])])),
    )
    yield (  # a column name over the csv module's field limit
        Case("long-header.csv", DATA, "could not be parsed: field larger than field limit"),
        _csv([*names, "y" * 2**20], [[*r, "1"] for r in text]),
    )
    yield (  # a long name of a column the model does not use: its note shows the name cut
        Case("long-name.csv", DATA, expected=good, note="does not use: 'yyyy*\\.\\.\\.'$"),
        _csv([*names, "y" * 100_000], [[*r, "1"] for r in text]),
    )


# Images for the digits demo ------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, pixels: bytes = b"", chunks: bytes = b"") -> bytes:
    """An 8-bit grayscale PNG whose header says `width` x `height`, whatever the pixels are."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + chunks
        + _chunk(b"IDAT", zlib.compress(pixels))
        + _chunk(b"IEND", b"")
    )


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as handle:
        for member, content in members:
            handle.writestr(member, content)
    return buffer.getvalue()


def _patch_headers(
    archive: bytes, member: str, patch: Callable[[bytearray, int, bool], None]
) -> bytes:
    """Apply `patch(raw, offset, central)` to `member`'s local and central headers."""
    raw = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as handle:
        local = handle.getinfo(member).header_offset
    patch(raw, local, False)
    central = raw.find(b"PK\x01\x02")
    while central >= 0:
        length = struct.unpack("<H", raw[central + 28 : central + 30])[0]
        if raw[central + 46 : central + 46 + length].decode() == member:
            patch(raw, central, True)
        central = raw.find(b"PK\x01\x02", central + 46)
    return bytes(raw)


def _declare_size(archive: bytes, member: str, size: int) -> bytes:
    """`archive` with `member` claiming `size` bytes uncompressed."""

    def patch(raw: bytearray, offset: int, central: bool) -> None:
        at = offset + (24 if central else 22)
        raw[at : at + 4] = struct.pack("<I", size)

    return _patch_headers(archive, member, patch)


def _encrypt_flag(archive: bytes, member: str) -> bytes:
    def patch(raw: bytearray, offset: int, central: bool) -> None:
        raw[offset + (8 if central else 6)] |= 1

    return _patch_headers(archive, member, patch)


def _symlink_member(name: str, target: str) -> bytes:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix
    info.external_attr = 0o120777 << 16  # a symbolic link
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        handle.writestr(info, target)
    return buffer.getvalue()


def _image_cases(directory: Path) -> Written:
    from PIL import Image

    from whybox.model_zoo.architectures import SmallCNN
    from whybox.model_zoo.demos import DIGITS_CONFIG
    from whybox.model_zoo.safetensors_models import save_safetensors

    network = SmallCNN(**DIGITS_CONFIG)
    yield IMAGE_MODEL, save_safetensors(network, "small-cnn", DIGITS_CONFIG, "logits")

    digit = _png(32, 32, b"".join(b"\x00" + bytes(range(32)) for _ in range(32)))
    too_many = "has too many pixels to decode safely"
    yield Case("bomb.png", IMAGES, too_many), _png(100_000, 100_000, bytes(1024))
    for width, height in ((8000, 6000), (10_000, 10_000)):  # under and over Pillow's limit
        yield (
            Case(
                f"{width * height // 10**6}-megapixels.png",
                IMAGES,
                f"{width}x{height} = {width * height:,} pixels, more than the limit",
            ),
            _png(width, height, bytes(1024)),
        )
    yield (
        Case("one-pixel-high.png", IMAGES, "50000000x1 = 50,000,000 pixels, more than the limit"),
        _png(50_000_000, 1, bytes(1024)),
    )
    yield Case("zero-width.png", IMAGES, "damaged or not an image"), _png(0, 32)
    yield Case("truncated.png", IMAGES, "damaged or not an image"), digit[: len(digit) // 2]
    text_bomb = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(64 * 2**20), 9))
    yield (
        Case("text-bomb.png", IMAGES, "damaged or not an image"),
        _png(32, 32, bytes(33), text_bomb),
    )
    jpeg = io.BytesIO()
    Image.new("L", (8, 8)).save(jpeg, "JPEG")
    raw = bytearray(jpeg.getvalue())
    frame = raw.find(b"\xff\xc0")
    raw[frame + 5 : frame + 9] = struct.pack(">HH", 65_500, 65_500)
    yield Case("bomb.jpg", IMAGES, too_many), bytes(raw)
    # zips: sizes, counts and names are checked before anything is decompressed
    yield (
        Case("declares-3gib.zip", IMAGES, "add up to 3.0 GiB, more than the limit"),
        _declare_size(_zip([("a.png", digit)]), "a.png", 3 * GIB),
    )
    yield (
        Case("10001-files.zip", IMAGES, "10,001 images in the zip, more than the limit of 10,000"),
        _zip([(f"{i:05d}.png", b"") for i in range(10_001)], zipfile.ZIP_STORED),
    )
    yield (
        Case("lying-size.zip", IMAGES, "in the zip could not be read; the zip is damaged"),
        _declare_size(_zip([("a.png", bytes(32 * 2**20))]), "a.png", 1000),
    )
    large = _png(6000, 6000, bytes(6000 * 6001))  # 36 MP of black, each ~35 KiB
    yield (
        Case("many-large-images.zip", IMAGES, "36,000,000,000 pixels together, more than the"),
        _zip([(f"{i:04d}.png", large) for i in range(1000)]),
    )
    yield (
        Case("bomb-inside.zip", IMAGES, f"'b.png' {too_many}"),
        _zip([("a.png", digit), ("b.png", _png(100_000, 100_000, bytes(1024)))]),
    )
    slip = "has a member with an absolute or '..' path"
    yield Case("zip-slip.zip", IMAGES, slip), _zip([("../../evil.png", digit)])
    yield Case("zip-absolute.zip", IMAGES, slip), _zip([("/tmp/evil.png", digit)])
    yield (
        Case("encrypted.zip", IMAGES, "is encrypted"),
        _encrypt_flag(_zip([("a.png", digit)]), "a.png"),
    )
    yield (
        Case("symlink-member.zip", IMAGES, "'a.png' in the zip is damaged or not an image"),
        _symlink_member("a.png", "/etc/passwd"),
    )
    header = {"descr": "|u1", "fortran_order": False, "shape": (1, 100_000, 100_000)}
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    error = "too large: it declares a 1x100000x100000 uint8 array of 10,000,000,000 bytes but"
    yield Case("bomb.npy", IMAGES, error), npy.getvalue() + bytes(16)
    # a folder (command line only) whose image is a symlink to an endless device
    yield (
        Case("folder-with-device", IMAGES, "no PNG or JPEG images in the folder", upload=False),
        {"a.png": Path("/dev/zero")},
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/hostile/make_corpus.py DIR", file=sys.stderr)
        return 2
    for case in write_corpus(argv[0]):
        outcome = f"error /{case.error}/" if case.error else "loads"
        print(f"{case.target:7} {case.name:28} {outcome}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parents[2]))  # model_zoo, run as a script
    sys.exit(main(sys.argv[1:]))
