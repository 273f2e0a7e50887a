"""`ImageSet` and `load_images`: untrusted image uploads made ready for an image classifier.

PNG, JPEG, a zip or a folder of them, or a `.npy` array, recognised by content. Every size
is checked before it costs memory: the number and declared size of a zip's members before
anything is decompressed, each image's pixel count (and all images' together) from their
headers before any is decoded, a .npy header against the bytes that follow it, and the
model-ready array's bytes before it is allocated.
"""

from __future__ import annotations

import hashlib
import io
import math
import operator
import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.limits import (
    IMAGE_MEMORY_MB,
    IMAGES,
    PIXELS,
    TOTAL_PIXELS,
    UNPACKED_MB,
    read_source,
)
from whybox.model_zoo.model import sha256_of

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"
COLORS = {1: "L", 3: "RGB"}
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
EXIF_ORIENTATION = 0x0112
MAX_SIDE = 4096  # of --image-size
NPY_DTYPES = {"uint8": 255, "uint16": 65535}  # integer dtypes and their full scale
NPY_CHUNK = 256  # images resized at a time, to bound the float copy of a large array
MAX_SHOWN_SOURCES = 20


@dataclass
class ImageSet:
    """Images ready for an image model: float32 (n, C, H, W) scaled to [0, 1]."""

    images: np.ndarray  # float32 (n, C, H, W) in [0, 1], not mean/std normalised
    display: np.ndarray  # uint8 (n, H, W, 3): the same images as RGB, for heat-map overlays
    sources: list[str]  # one per image: zip member or file name, "name[i]" for .npy rows
    sha256: str  # of the uploaded bytes (of the image files' names and bytes for a folder)
    name: str = "images"
    preprocessing: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    labels: None = None  # duck-typing with model_zoo.data.Dataset
    label_name: None = None

    @property
    def values(self) -> np.ndarray:
        return self.images

    @property
    def feature_names(self) -> list[str]:
        return []

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, rows: Sequence[int]) -> ImageSet:
        """The images at positions `rows`, numbered anew."""
        rows = np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            images=self.images[rows],
            display=self.display[rows],
            sources=[self.sources[r] for r in rows],
        )

    def background(self, n: int, seed: int = 0) -> np.ndarray:
        """A reproducible sample of `n` images (all when there are fewer) as reference data."""
        if n <= 0:
            raise WhyboxError(f"the background size must be at least 1 (got {n})")
        if n >= len(self):
            return self.images.copy()
        index = np.random.default_rng(seed).choice(len(self), size=n, replace=False)
        return self.images[np.sort(index)]

    def summary(self) -> dict:
        return {
            "name": self.name,
            "images": len(self),
            "shape": list(self.images.shape[1:]),
            "sources": self.sources[:MAX_SHOWN_SOURCES],
            "preprocessing": dict(self.preprocessing),
            "sha256": self.sha256,
            "notes": list(self.notes),
        }


def parse_image_size(text: str) -> tuple[int, int]:
    """`--image-size`: "224", "224x224" or "224,224" as (H, W)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+)\s*)?", text)
    size = (int(match[1]), int(match[2] or match[1])) if match else None
    if size is None or not all(1 <= side <= MAX_SIDE for side in size):
        raise WhyboxError(
            f"--image-size must be H or HxW in pixels, each 1 to {MAX_SIDE} "
            f"(e.g. 224 or 224x224); got {text!r}"
        )
    return size


def parse_floats(text: str) -> list[float]:
    """`--mean 0.485,0.456,0.406` as a list of floats."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise WhyboxError(
            f"expected comma-separated numbers such as 0.485,0.456,0.406; got {text!r}"
        ) from None


def images_to_zip(images: np.ndarray, names: Sequence[str]) -> bytes:
    """uint8 (n, H, W) or (n, H, W, 3) images as a zip of PNGs (".png" added where missing).

    Member timestamps are fixed so the same images always give the same bytes (and SHA-256).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or not (
        images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)
    ):
        raise WhyboxError(
            f"images_to_zip takes uint8 (n, H, W) or (n, H, W, 3) arrays; got {images.dtype} "
            f"{images.shape}"
        )
    names = [n if n.lower().endswith(".png") else f"{n}.png" for n in names]
    if len(names) != len(images) or len(set(names)) != len(names):
        raise WhyboxError(f"images_to_zip needs {len(images)} distinct names; got {len(names)}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for image, member in zip(images, names, strict=True):
            png = io.BytesIO()
            Image.fromarray(image).save(png, "PNG")
            archive.writestr(
                zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), png.getvalue()
            )
    return buffer.getvalue()


def images_from_files(
    files: list[tuple[str, bytes]],
    input_shape: tuple[int, int, int],
    *,
    name: str,
    sha256: str,
    image_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ImageSet:
    """Some images of a larger folder or zip, given as (name, bytes), read as `load_images`
    reads the whole (`sha256` is the whole's)."""
    return _from_files(files, _plan(input_shape, image_size, mean, std), name, sha256, [], "")


def _plan(
    input_shape: tuple[int, int, int],
    image_size: tuple[int, int] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> _Plan:
    channels, height, width = _check_input_shape(input_shape)
    if image_size is not None:
        image_size = parse_image_size("x".join(str(side) for side in image_size))
    stats = {
        "mean": _channel_values(mean, channels, "--mean"),
        "std": _channel_values(std, channels, "--std", positive=True),
    }
    return _Plan(channels, (height, width), image_size, stats)


def load_images(
    source: str | Path | bytes,
    input_shape: tuple[int, int, int],
    *,
    name: str | None = None,
    image_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ImageSet:
    """Read images for a model taking `input_shape` (C, H, W); H or W of 0 means any size.

    The size is the model's where it is fixed, else `image_size`, else the size all images
    share. `mean`/`std` are validated and recorded, not applied: the model wrapper normalises,
    so attributions stay in [0, 1] pixel units.
    """
    plan = _plan(input_shape, image_size, mean, std)
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        folder = Path(source)
        files, digest, notes = _read_folder(folder)
        return _from_files(files, plan, name or folder.name, digest, notes, "in the folder")
    raw, name = read_source(source, name, "image", "images")
    if raw.startswith(NPY_MAGIC):
        return _from_npy(raw, plan, name)
    if raw.startswith(ZIP_MAGICS):
        files, notes = _read_zip(raw)
        return _from_files(files, plan, name, sha256_of(raw), notes, "in the zip")
    if raw.startswith((PNG_MAGIC, JPEG_MAGIC)):
        return _from_files([(name, raw)], plan, name, sha256_of(raw), [], "")
    raise WhyboxError(
        f"{name!r} is not a PNG, JPEG, zip of images or .npy array; upload one of those "
        "(other image formats: convert them to PNG first)"
    )


@dataclass
class _Plan:
    """What the model wants: channels, its (H, W) (0 = any), the --image-size, mean/std."""

    channels: int
    model_size: tuple[int, int]
    image_size: tuple[int, int] | None
    stats: dict

    @property
    def color(self) -> str:
        return COLORS[self.channels]

    def target(self, sizes: list[tuple[int, int]]) -> tuple[int, int]:
        """Per axis: the model's fixed side, else --image-size, else the side all images share."""
        free = [
            axis
            for axis, side in zip(("height", "width"), self.model_size, strict=True)
            if not side
        ]
        if self.image_size and any(
            fixed and fixed != wanted
            for fixed, wanted in zip(self.model_size, self.image_size, strict=True)
        ):
            raise WhyboxError(
                f"--image-size {_hw(self.image_size)} does not match the model's fixed input "
                f"size {_hw(self.model_size)}; leave --image-size out"
            )
        target = []
        for axis, fixed in enumerate(self.model_size):
            if fixed or self.image_size:
                target.append(fixed or self.image_size[axis])
                continue
            other = next((s for s in sizes if s[axis] != sizes[0][axis]), None)
            if other is not None:
                what = "size" if len(free) == 2 else free[0]
                raise WhyboxError(
                    f"the images have different sizes (e.g. {_hw(sizes[0])} and {_hw(other)}) "
                    f"and the model accepts any {what}; give --image-size HxW"
                )
            target.append(sizes[0][axis])
        return target[0], target[1]

    def record(self, size: tuple[int, int], dtype: str, resized: int) -> dict:
        return {
            "input_shape": [self.channels, *size],
            "color": self.color,
            "scale": "[0, 1]",
            "source_dtype": dtype,
            "resize": "bilinear" if resized else None,
            "resized": resized,
            **self.stats,
        }

    def allocate(self, n: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The (images, display) arrays, after checking the image-memory limit."""
        needed = n * self.channels * size[0] * size[1] * 4
        if needed > IMAGE_MEMORY_MB.bytes():
            raise IMAGE_MEMORY_MB.exceeded(
                f"{n} images of {self.channels}x{_hw(size)} need {_human(needed)} as float32",
                "use fewer images or a smaller --image-size",
            )
        return (
            np.empty((n, self.channels, *size), dtype=np.float32),
            np.empty((n, *size, 3), dtype=np.uint8),
        )


def _check_input_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        channels, height, width = (operator.index(side) for side in shape)
    except (TypeError, ValueError):
        raise WhyboxError(
            f"an image model's input shape must be (C, H, W); got {shape!r}"
        ) from None
    if min(height, width) < 0:
        raise WhyboxError(f"an image model's input shape cannot be negative; got {shape!r}")
    if channels not in COLORS:
        raise WhyboxError(
            f"image models must take 1 (grayscale) or 3 (RGB) channels; this one takes {channels}"
        )
    return channels, height, width


def _channel_values(
    values: Sequence[float] | None, channels: int, flag: str, positive: bool = False
) -> list[float] | None:
    """`values` as one float per channel (a single value is repeated), or None."""
    if values is None:
        return None
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise WhyboxError(f"{flag} must be numbers, one per channel; got {values!r}") from None
    if len(values) not in (1, channels):
        raise WhyboxError(
            f"{flag} has {len(values)} values but the model takes {channels} channel(s); "
            f"give {'1' if channels == 1 else f'1 or {channels}'}"
        )
    if not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        need = "positive, finite" if positive else "finite"
        raise WhyboxError(f"{flag} values must be {need} numbers; got {values}")
    return values * (channels // len(values))


def _hw(size: Sequence[int]) -> str:
    return "x".join(str(side) if side else "any" for side in size)


def _human(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _ignored_note(ignored: int, where: str) -> list[str]:
    if not ignored:
        return []
    return [f"ignored {ignored} file(s) {where} that are not PNG or JPEG images (by name)"]


def _check_count_and_size(n: int, total: int, where: str) -> None:
    if n == 0:
        raise WhyboxError(
            f"no PNG or JPEG images {where} (names ending {', '.join(IMAGE_SUFFIXES)})"
        )
    if n > IMAGES.value():
        raise IMAGES.exceeded(f"{n:,} images {where}", "upload fewer images")
    if total > UNPACKED_MB.bytes():
        raise UNPACKED_MB.exceeded(
            f"the images {where} add up to {_human(total)}", "upload fewer or smaller images"
        )


def _read_capped(stream: IO[bytes], declared: int, what: str) -> bytes:
    """At most `declared` bytes of `stream`; a stream that holds more is an error."""
    data = stream.read(declared + 1)
    if len(data) > declared:
        raise WhyboxError(f"{what} holds more than its declared {declared} bytes; it is damaged")
    return data


def _hidden(member: str) -> bool:
    return member.startswith("__MACOSX/") or member.rstrip("/").rsplit("/", 1)[-1].startswith(".")


def _unsafe(member: str) -> bool:
    """Absolute names, drive letters and `..` parts (zip-slip), with either separator."""
    parts = re.split(r"[/\\]", member)
    return member.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", member)) or ".." in parts


def _read_zip(raw: bytes) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(member name, bytes) of the zip's images sorted by name, after checking every limit."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WhyboxError(f"the zip file is damaged: {exc}") from None
    with archive:
        images, others = zip_images(archive)
        _check_count_and_size(len(images), sum(i.file_size for i in images), "in the zip")
        files = [(info.filename, read_zip_image(archive, info)) for info in images]
    return files, _ignored_note(others, "in the zip")


def zip_images(archive: zipfile.ZipFile) -> tuple[list[zipfile.ZipInfo], int]:
    """The zip's image members sorted by name (hidden ones left out), and how many other
    members it holds; a member with an unsafe path or a password is an error."""
    members = [i for i in archive.infolist() if not i.is_dir() and not _hidden(i.filename)]
    unsafe = [i.filename for i in members if _unsafe(i.filename)]
    if unsafe:
        raise WhyboxError(
            f"the zip has a member with an absolute or '..' path ({unsafe[0]!r}); "
            "zip the images with relative names"
        )
    members.sort(key=lambda i: i.filename)
    images = [i for i in members if i.filename.lower().endswith(IMAGE_SUFFIXES)]
    encrypted = [i.filename for i in images if i.flag_bits & 0x1]
    if encrypted:
        raise WhyboxError(
            f"image {encrypted[0]!r} in the zip is encrypted; zip the images without a password"
        )
    return images, len(members) - len(images)


def read_zip_image(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One image member's bytes, no more than it declares."""
    what = f"image {info.filename!r} in the zip"
    try:
        with archive.open(info) as stream:
            return _read_capped(stream, info.file_size, what)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise WhyboxError(f"{what} could not be read; the zip is damaged: {exc}") from None


def folder_images(folder: Path) -> tuple[list[Path], int]:
    """The folder's image files sorted by name (hidden files left out), and how many other
    files it holds."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in paths if p.name.lower().endswith(IMAGE_SUFFIXES)]
    return images, len(paths) - len(images)


def digest_image(digest: Any, name: str, data: bytes) -> None:
    """Add one image of a folder to the folder's digest (its name, size and bytes)."""
    digest.update(f"{name}\0{len(data)}\0".encode() + data)


def _read_folder(folder: Path) -> tuple[list[tuple[str, bytes]], str, list[str]]:
    """(file name, bytes) of the folder's images sorted by name, its digest, notes."""
    images, others = folder_images(folder)
    sizes = [p.stat().st_size for p in images]
    _check_count_and_size(len(images), sum(sizes), "in the folder")
    digest = hashlib.sha256()
    files = []
    for path, size in zip(images, sizes, strict=True):
        with path.open("rb") as stream:
            data = _read_capped(stream, size, f"image {path.name!r} in the folder")
        digest_image(digest, path.name, data)
        files.append((path.name, data))
    return files, digest.hexdigest(), _ignored_note(others, "in the folder")


def _damaged(label: str, where: str, exc: Exception | str) -> WhyboxError:
    place = f" {where}" if where else ""
    return WhyboxError(f"image {label!r}{place} is damaged or not an image: {exc}")


def _open(label: str, data: bytes, where: str) -> tuple[Image.Image, tuple[int, int]]:
    """The lazily opened image and its (H, W) after EXIF orientation; nothing is decoded."""
    try:
        with warnings.catch_warnings():  # its warning would be a second line: PIXELS decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
    except Image.UnidentifiedImageError:
        raise _damaged(label, where, "not a PNG or JPEG file") from None
    except Image.DecompressionBombError:
        raise WhyboxError(
            f"image {label!r} has too many pixels to decode safely; downscale it first"
        ) from None
    except Exception as exc:  # Pillow raises many types for damaged files
        raise _damaged(label, where, exc) from None
    width, height = image.size
    if width * height > PIXELS.value():
        raise PIXELS.exceeded(
            f"image {label!r} is {width}x{height} = {width * height:,} pixels", "downscale it first"
        )
    try:  # PNG's getexif() decodes the image, so read only the EXIF found in the header
        exif = Image.Exif()
        if "exif" in image.info:
            exif.load(image.info["exif"])
        rotated = exif.get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except Exception as exc:
        raise _damaged(label, where, exc) from None
    return image, ((width, height) if rotated else (height, width))


def _decode(image: Image.Image, color: str, size: tuple[int, int]) -> tuple[np.ndarray, str, bool]:
    """(H, W, C) float32 in [0, 1] at `size`, the source dtype, and whether it was resized."""
    ImageOps.exif_transpose(image, in_place=True)
    resize = image.size != size[::-1]
    if image.mode in SIXTEEN_BIT_MODES:  # 16-bit grayscale PNG: resize as float
        image = Image.fromarray(np.asarray(image, dtype=np.float32) / 65535)
        dtype, scale = "uint16", 1
    else:
        if "A" in image.mode or "transparency" in image.info:
            image = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
        image = image.convert(color)
        dtype, scale = "uint8", 255
    if resize:
        image = image.resize(size[::-1], Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32).reshape(*size, -1) / np.float32(scale)
    if pixels.shape[2] != len(color):  # 16-bit grayscale for an RGB model
        pixels = np.repeat(pixels, len(color), axis=2)
    return np.clip(pixels, 0, 1), dtype, resize


def _from_files(
    files: list[tuple[str, bytes]],
    plan: _Plan,
    name: str,
    digest: str,
    notes: list[str],
    where: str,
) -> ImageSet:
    opened = [_open(label, data, where) for label, data in files]
    total = sum(height * width for _, (height, width) in opened)
    if total > TOTAL_PIXELS.value():
        raise TOTAL_PIXELS.exceeded(
            f"the images{' ' + where if where else ''} have {total:,} pixels together",
            "upload fewer or smaller images",
        )
    size = plan.target([oriented for _, oriented in opened])
    images, display = plan.allocate(len(files), size)
    dtypes, resized = set(), 0
    for i, ((label, _), (image, _)) in enumerate(zip(files, opened, strict=True)):
        try:  # Pillow's `with image` keeps the decoded pixels; close() frees them
            pixels, dtype, resize = _decode(image, plan.color, size)
        except Exception as exc:
            raise _damaged(label, where, exc) from None
        finally:
            image.close()
        images[i] = pixels.transpose(2, 0, 1)
        display[i] = np.rint(pixels * 255).astype(np.uint8)
        dtypes.add(dtype)
        resized += resize
    if resized:
        notes = [*notes, f"resized {resized} of {len(files)} image(s) to {_hw(size)} (bilinear)"]
    return ImageSet(
        images=images,
        display=display,
        sources=[label for label, _ in files],
        sha256=digest,
        name=name,
        preprocessing=plan.record(size, ",".join(sorted(dtypes)), resized),
        notes=notes,
    )


def _npy_layout(shape: tuple[int, ...], channels: int) -> tuple[int, int, int, int, bool]:
    """(n, H, W, C, channels_last) of an array's shape, or an error saying which are accepted."""
    hint = "for one image save shape (1, H, W, C) or (1, C, H, W)"
    if len(shape) in (2, 3):
        if channels != 1:
            raise WhyboxError(
                f"the array has shape {shape} with no channel axis but the model takes "
                f"{channels} channels; save it as (n, H, W, {channels}) or (n, {channels}, H, W)"
            )
        n, height, width = shape if len(shape) == 3 else (1, *shape)
        return n, height, width, 1, True
    if len(shape) == 4 and channels in (shape[1], shape[3]):
        if shape[1] == channels:
            return shape[0], shape[2], shape[3], channels, False
        return shape[0], shape[1], shape[2], channels, True
    raise WhyboxError(
        f"the array has shape {shape}; a model taking {channels} channel(s) needs (n, H, W, "
        f"{channels}) or (n, {channels}, H, W){' or (n, H, W)' if channels == 1 else ''}; {hint}"
    )


def _npy_scale(array: np.ndarray) -> tuple[float, str]:
    """The full-scale value of the array's dtype, after checking floats are in [0, 1]."""
    dtype = array.dtype
    if dtype.name in NPY_DTYPES:
        return NPY_DTYPES[dtype.name], dtype.name
    if dtype == np.bool_:
        return 1.0, "bool"
    if dtype.kind == "f":
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise WhyboxError(
                "the float array has values outside [0, 1] (or NaN/infinite); scale it to "
                "[0, 1] or save it as uint8"
            )
        return 1.0, dtype.name
    raise WhyboxError(
        f"the array's dtype is {dtype}; save it as uint8 (0-255), uint16, bool or float in [0, 1]"
    )


def _batches(n: int) -> Iterator[slice]:
    for start in range(0, n, NPY_CHUNK):
        yield slice(start, min(start + NPY_CHUNK, n))


def _check_npy_size(raw: bytes, name: str) -> None:
    """Refuse a .npy file whose header declares more data than the file holds, before numpy
    allocates the array it declares."""
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(stream)
    except (ValueError, OSError, EOFError) as exc:
        raise WhyboxError(f"the .npy file {name!r} is damaged: {exc}") from None
    declared, held = math.prod(shape) * dtype.itemsize, len(raw) - stream.tell()
    if not dtype.hasobject and declared > held:
        raise WhyboxError(
            f"the .npy file {name!r} is damaged or too large: it declares a "
            f"{'x'.join(map(str, shape))} {dtype} array of {declared:,} bytes but holds {held:,}"
        )


def _from_npy(raw: bytes, plan: _Plan, name: str) -> ImageSet:
    _check_npy_size(raw, name)
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise WhyboxError(
                "the .npy array holds Python objects, which are refused because loading them "
                "could run code; save a numeric array (uint8, or float in [0, 1])"
            ) from None
        raise WhyboxError(f"the .npy file {name!r} is damaged: {exc}") from None
    except (OSError, EOFError, MemoryError) as exc:  # MemoryError: a header declaring too much
        raise WhyboxError(f"the .npy file {name!r} is damaged or too large: {exc}") from None
    n, height, width, channels, channels_last = _npy_layout(array.shape, plan.channels)
    if n == 0 or height == 0 or width == 0:
        raise WhyboxError(f"the array has shape {array.shape}, with no images in it")
    if height * width > PIXELS.value():
        raise PIXELS.exceeded(
            f"the array's images are {width}x{height} pixels", "downscale them first"
        )
    if n > IMAGES.value():
        raise IMAGES.exceeded(f"the array holds {n:,} images", "upload fewer images")
    scale, dtype = _npy_scale(array)
    array = array.reshape(n, height, width, channels) if channels_last else array
    size = plan.target([(height, width)])
    images, display = plan.allocate(n, size)
    for rows in _batches(n):
        chunk = torch.from_numpy(np.asarray(array[rows], dtype=np.float32) / np.float32(scale))
        chunk = chunk.permute(0, 3, 1, 2) if channels_last else chunk
        if size != (height, width):
            shrinking = size[0] < height or size[1] < width
            chunk = torch.nn.functional.interpolate(
                chunk, size=size, mode="bilinear", align_corners=False, antialias=shrinking
            ).clamp_(0, 1)
        images[rows] = chunk.numpy()
        display[rows] = np.rint(images[rows] * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    resized = n if size != (height, width) else 0
    notes = [f"resized {n} image(s) to {_hw(size)} (bilinear)"] if resized else []
    return ImageSet(
        images=images,
        display=display,
        sources=[f"{name}[{i}]" for i in range(n)],
        sha256=sha256_of(raw),
        name=name,
        preprocessing=plan.record(size, dtype, resized),
        notes=notes,
    )
