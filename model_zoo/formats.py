"""Recognising a model file's format from its content; the file name is only a hint.

Nothing here deserialises a model: sniffing reads magic bytes, zip directories, JSON
headers and, for pickles, opcodes (`pickletools`, which never executes them), so it is
safe on any upload.
"""

from __future__ import annotations

import bz2
import io
import itertools
import json
import lzma
import pickletools
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePath

from whybox.model_zoo.errors import WhyboxError


@dataclass(frozen=True)
class Format:
    """A model file format: its key (`Model.format`), how messages name it, whether it is safe.

    `safe` is False for formats whose loading can run code embedded in the file.
    """

    key: str
    label: str
    safe: bool


FORMATS: dict[str, Format] = {
    f.key: f
    for f in (
        Format("xgboost-json", "an XGBoost JSON model", True),
        Format("xgboost-ubj", "an XGBoost UBJSON model", True),
        Format("lightgbm-text", "a LightGBM text model", True),
        Format("skops", "a scikit-learn skops file", True),
        Format("onnx", "an ONNX model", True),
        Format("safetensors", "a safetensors file", True),
        Format("pickle", "a pickle file", False),
        Format("joblib", "a joblib file (a pickle)", False),
        Format("torch", "a full torch.save checkpoint (a pickle)", False),
        Format("torchscript", "a TorchScript archive", False),
        Format("torch-export", "a torch.export archive (.pt2, which holds pickles)", False),
    )
}

ACCEPTED = (
    "XGBoost JSON/UBJ (save_model('model.json')), LightGBM text (save_model('model.txt')), "
    "scikit-learn via skops (skops.io.dump), ONNX, and safetensors with whybox metadata"
)

# Which format a file name suggests; used only to word errors for content we cannot place.
SUFFIX_HINTS = {
    ".json": "xgboost-json",
    ".ubj": "xgboost-ubj",
    ".txt": "lightgbm-text",
    ".skops": "skops",
    ".onnx": "onnx",
    ".safetensors": "safetensors",
}

ZIP_MAGIC = b"PK\x03\x04"
# torch.save before torch 1.6 (and with _use_new_zipfile_serialization=False): pickles in a
# row, the first of them this magic number
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
HEAD = 256  # bytes looked at for magic strings near the start
MAX_PROBE = 16  # decompressed bytes looked at inside a compressed file
COMPRESSIONS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"]\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"ZF0x", "joblib-zlib"),  # joblib < 0.10 wrote its own zlib container
)
UNPROBED = {"lz4", "joblib-zlib"}  # containers only joblib writes here; not inflated


def sniff(raw: bytes, name: str = "") -> str:
    """The key in FORMATS of the model file `raw`, or a WhyboxError saying what it is not."""
    if not raw.strip():
        raise WhyboxError(f"the model file {name!r} is empty; upload the saved model itself")
    head = raw[:HEAD]
    if _is_safetensors(raw):
        return "safetensors"
    if head.lstrip()[:1] == b"{":
        return _sniff_brace(raw, name)
    if head.startswith(b"tree\n") and b"version=" in head:
        return "lightgbm-text"
    if head.startswith(ZIP_MAGIC):
        return _sniff_zip(raw, name)
    if raw.startswith(TORCH_LEGACY_MAGIC):
        return "torch"
    if len(raw) > 1 and raw[0] == 0x80 and 2 <= raw[1] <= 5:
        return "joblib" if b"joblib.numpy_pickle" in raw else "pickle"
    compression = _compression(raw)
    if compression:
        if compression in UNPROBED or _decompressed_pickle(raw, compression):
            return "joblib"
        raise WhyboxError(
            f"{name!r} is a {compression}-compressed file that is not a model format whybox "
            f"reads; decompress it, or save the model as one of: {ACCEPTED}"
        )
    if _is_old_pickle(raw):
        return "pickle"
    if _is_onnx(raw):
        return "onnx"
    raise WhyboxError(_unknown_message(raw, name))


def _is_safetensors(raw: bytes) -> bool:
    """8-byte little-endian header length N, then N bytes of JSON starting with '{'."""
    if len(raw) < 10:
        return False
    size = int.from_bytes(raw[:8], "little")
    return 2 <= size <= len(raw) - 8 and raw[8:9] == b"{"


def _sniff_brace(raw: bytes, name: str) -> str:
    head = raw[:HEAD]
    if b'"learner"' in head:
        return "xgboost-json"
    if b"learner" in head[:64]:
        return "xgboost-ubj"
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WhyboxError(_unknown_message(raw, name)) from None
    except RecursionError:  # nesting deeper than the interpreter's stack allows
        raise WhyboxError(
            f"{name!r} is a JSON file nested too deeply to be a model; whybox reads {ACCEPTED}"
        ) from None
    if isinstance(document, dict) and "learner" in document:
        return "xgboost-json"
    raise WhyboxError(
        f"{name!r} is a JSON file but not an XGBoost model (it has no 'learner'); "
        f"whybox reads {ACCEPTED}"
    )


def _sniff_zip(raw: bytes, name: str) -> str:
    try:
        entries = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise WhyboxError(
            f"{name!r} is a damaged zip archive ({first_line(exc)}); save it again"
        ) from None
    base = [PurePath(e).name for e in entries]
    if "archive_format" in base or any("/models/" in f"/{e}" for e in entries):
        return "torch-export"
    if "constants.pkl" in base or any("/code/" in f"/{e}" for e in entries):
        return "torchscript"
    if "data.pkl" in base:
        return "torch"
    if "schema.json" in entries:
        return "skops"
    raise WhyboxError(
        f"{name!r} is a zip archive but not a skops, torch or ONNX model; whybox reads {ACCEPTED}"
    )


def _compression(raw: bytes) -> str | None:
    for magic, kind in COMPRESSIONS:
        if raw.startswith(magic):
            return kind
    # A zlib stream with the default window (what joblib writes): 0x78, header checksum % 31.
    if len(raw) > 1 and raw[0] == 0x78 and (raw[0] * 256 + raw[1]) % 31 == 0:
        return "zlib"
    return None


def _decompressed_pickle(raw: bytes, compression: str) -> bool:
    """Whether the first bytes inside a compressed file are a pickle (never more is inflated)."""
    data = raw[:65536]
    try:
        if compression == "gzip":
            inner = zlib.decompressobj(wbits=31).decompress(data, MAX_PROBE)
        elif compression == "zlib":
            inner = zlib.decompressobj().decompress(data, MAX_PROBE)
        elif compression == "bz2":
            inner = bz2.BZ2Decompressor().decompress(data, max_length=MAX_PROBE)
        else:
            inner = lzma.LZMADecompressor().decompress(data, max_length=MAX_PROBE)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return False
    return len(inner) > 1 and inner[0] == 0x80 and 2 <= inner[1] <= 5


def _is_old_pickle(raw: bytes) -> bool:
    """A protocol 0/1 pickle: it ends in STOP and its first opcodes parse (never run)."""
    if not raw.rstrip().endswith(b"."):
        return False
    if raw[:1] not in {b"(", b"]", b"}", b"c", b"I", b"L", b"F", b"S", b"V", b"N", b"K", b"X"}:
        return False
    try:
        ops = list(itertools.islice(pickletools.genops(io.BytesIO(raw)), 8))
    except (ValueError, EOFError, UnicodeDecodeError):
        return False
    return bool(ops)


def _is_onnx(raw: bytes) -> bool:
    """A protobuf ModelProto with an IR version and a graph that has nodes and outputs."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_from_string(raw)
    except (DecodeError, ValueError, RuntimeError):
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0 and len(model.graph.output) > 0


def _unknown_message(raw: bytes, name: str) -> str:
    hinted = SUFFIX_HINTS.get(PurePath(name).suffix.lower())
    if hinted:
        what = f"is named like {FORMATS[hinted].label} but its content is not one"
        advice = "it may be damaged or truncated; save it again"
        return f"{name!r} {what}; {advice} (whybox reads {ACCEPTED})"
    try:
        raw[:4096].decode("utf-8")
        looks = "is text (a data file?), not a model"
    except UnicodeDecodeError:
        looks = "is not a model format whybox recognises"
    return f"{name!r} {looks}; save the model as one of: {ACCEPTED}"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, shortened, for one-line errors."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
