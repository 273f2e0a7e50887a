"""Image uploads: formats, sizes, scaling, and every limit checked before it costs memory."""

import io
import pathlib
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageFile

from whybox.model_zoo import WhyboxError
from whybox.model_zoo import image_data as images_module
from whybox.model_zoo.image_data import (
    ImageSet,
    images_to_zip,
    load_images,
    parse_floats,
    parse_image_size,
)
from whybox.model_zoo.model import sha256_of

GRAY = (1, 8, 8)
RGB = (3, 8, 8)
ANY = (1, 0, 0)


def encode(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def full(value: int, size: tuple[int, int] = (8, 8), dtype=np.uint8) -> np.ndarray:
    return np.full(size, value, dtype=dtype)


NOISE_PNG = encode(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
TRUNCATED_PNG = NOISE_PNG[: len(NOISE_PNG) // 2]


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


SMALL_NPY = npy(np.zeros((2, 4, 4), dtype=np.uint8))


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return buffer.getvalue()


def error_of(*args, **kwargs) -> str:
    with pytest.raises(WhyboxError) as info:
        load_images(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("as_path", [False, True])
def test_single_png_and_jpeg(tmp_path, fmt, as_path):
    raw = encode(full(51), fmt)
    source = tmp_path / "digit.img" if as_path else raw
    if as_path:
        source.write_bytes(raw)
    loaded = load_images(source, GRAY, name=None if as_path else "digit.img")
    assert loaded.images.shape == (1, 1, 8, 8) and loaded.images.dtype == np.float32
    assert loaded.display.shape == (1, 8, 8, 3) and loaded.display.dtype == np.uint8
    assert loaded.sources == ["digit.img"] and loaded.name == "digit.img"
    assert loaded.sha256 == sha256_of(raw)
    np.testing.assert_allclose(loaded.images, 0.2, atol=0 if fmt == "PNG" else 2 / 255)


def test_uint8_scaling_is_exact():
    loaded = load_images(encode(full(51)), GRAY)
    assert (loaded.images == np.float32(0.2)).all()
    assert (loaded.display == 51).all()
    assert loaded.preprocessing == {
        "input_shape": [1, 8, 8],
        "color": "L",
        "scale": "[0, 1]",
        "source_dtype": "uint8",
        "resize": None,
        "resized": 0,
        "mean": None,
        "std": None,
    }


def test_sixteen_bit_png_scales_by_65535():
    loaded = load_images(encode(full(13107, dtype=np.uint16)), RGB)
    assert (loaded.images == np.float32(0.2)).all()
    assert loaded.preprocessing["source_dtype"] == "uint16"
    assert (loaded.display == 51).all()


def test_zip_sorted_by_name_with_ignored_members_noted():
    raw = zip_of(
        {
            "b.png": encode(full(20)),
            "readme.txt": b"hello",
            "a.PNG": encode(full(10)),
            "sub/c.jpg": encode(full(200), "JPEG"),
            "__MACOSX/._a.png": b"resource fork",
            "sub/.hidden.png": b"not read",
            "sub/": b"",
        }
    )
    loaded = load_images(raw, GRAY, name="digits.zip")
    assert loaded.sources == ["a.PNG", "b.png", "sub/c.jpg"]
    np.testing.assert_allclose(loaded.images[:, 0, 0, 0] * 255, [10, 20, 200], atol=2)
    assert loaded.notes == [
        "ignored 1 file(s) in the zip that are not PNG or JPEG images (by name)"
    ]
    assert loaded.sha256 == sha256_of(raw)


def test_folder_sorted_by_name(tmp_path):
    (tmp_path / "b.jpeg").write_bytes(encode(full(100), "JPEG"))
    (tmp_path / "a.png").write_bytes(encode(full(50)))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".c.png").write_bytes(b"hidden, not read")
    (tmp_path / "nested").mkdir()
    loaded = load_images(tmp_path, GRAY)
    assert loaded.sources == ["a.png", "b.jpeg"]
    assert loaded.name == tmp_path.name
    assert len(loaded.notes) == 1 and "ignored 1 file(s) in the folder" in loaded.notes[0]
    assert loaded.display[0, 0, 0, 0] == 50
    assert len(loaded.sha256) == 64


def test_images_to_zip_round_trip_and_is_reproducible():
    rgb = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    raw = images_to_zip(rgb, ["x", "y.png"])
    assert raw == images_to_zip(rgb, ["x", "y.png"])
    loaded = load_images(raw, (3, 4, 5))
    assert loaded.sources == ["x.png", "y.png"]
    np.testing.assert_array_equal(loaded.display, rgb)
    np.testing.assert_array_equal(loaded.images, rgb.transpose(0, 3, 1, 2) / np.float32(255))
    with pytest.raises(WhyboxError, match="distinct names"):
        images_to_zip(rgb, ["x", "x.png"])
    with pytest.raises(WhyboxError, match="uint8"):
        images_to_zip(rgb.astype(np.float32), ["x", "y"])


def test_color_conversion():
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)  # transparent black
    rgba[0, 0] = [255, 0, 0, 255]  # opaque red
    as_rgb = load_images(encode(rgba), RGB)
    assert as_rgb.preprocessing["color"] == "RGB"
    assert as_rgb.display[0, 1, 1].tolist() == [255, 255, 255]  # composited onto white
    assert as_rgb.display[0, 0, 0].tolist() == [255, 0, 0]
    as_gray = load_images(encode(rgba), GRAY)
    assert as_gray.images.shape == (1, 1, 8, 8)
    assert as_gray.display[0, 0, 0].tolist() == [76] * 3  # ITU-R 601 luma of red
    assert as_gray.display[0, 1, 1].tolist() == [255] * 3
    gray_for_rgb = load_images(encode(full(51)), RGB)
    assert gray_for_rgb.images.shape == (1, 3, 8, 8)
    assert (gray_for_rgb.images == np.float32(0.2)).all()


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    raw = encode(np.zeros((4, 8), dtype=np.uint8), "JPEG", exif=exif)  # 8 wide, 4 high
    assert load_images(raw, ANY).images.shape == (1, 1, 8, 4)


def test_resize_to_the_model_size_is_recorded():
    loaded = load_images(
        zip_of({"a.png": encode(full(51, (16, 12))), "b.png": encode(full(9))}), GRAY
    )
    assert loaded.images.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(loaded.images[0], 0.2, atol=1e-6)  # uniform stays uniform
    assert loaded.preprocessing["resize"] == "bilinear"
    assert loaded.preprocessing["resized"] == 1
    assert "resized 1 of 2 image(s) to 8x8 (bilinear)" in loaded.notes


def test_any_size_model():
    same = zip_of({"a.png": encode(full(0, (6, 5))), "b.png": encode(full(0, (6, 5)))})
    assert load_images(same, ANY).images.shape == (2, 1, 6, 5)
    mixed = zip_of({"a.png": encode(full(0, (28, 28))), "b.png": encode(full(0, (32, 32)))})
    message = error_of(mixed, ANY)
    assert "28x28 and 32x32" in message and "any size" in message and "--image-size" in message
    fixed = load_images(mixed, ANY, image_size=(16, 20))
    assert fixed.images.shape == (2, 1, 16, 20) and fixed.preprocessing["resized"] == 2
    assert "any width" in error_of(mixed, (1, 28, 0))
    assert load_images(mixed, (1, 28, 0), image_size=(28, 30)).images.shape == (2, 1, 28, 30)


def test_image_size_conflicting_with_fixed_model_size():
    message = error_of(encode(full(0)), GRAY, image_size=(32, 32))
    assert "32x32" in message and "8x8" in message
    assert load_images(encode(full(0, (4, 4))), GRAY, image_size=(8, 8)).images.shape == (
        1,
        1,
        8,
        8,
    )


NPY_LAYOUTS = [
    ((8, 8), GRAY, lambda a: a[0, 0]),
    ((2, 8, 8), GRAY, lambda a: a[:, 0]),
    ((2, 8, 8, 1), GRAY, lambda a: a.transpose(0, 2, 3, 1)),
    ((2, 1, 8, 8), GRAY, lambda a: a),
    ((2, 8, 8, 3), RGB, lambda a: a.transpose(0, 2, 3, 1)),
    ((2, 3, 8, 8), RGB, lambda a: a),
    ((2, 3, 8, 3), (3, 8, 3), lambda a: a),  # both axes fit: channels-first wins
]


@pytest.mark.parametrize(("shape", "model", "to_file"), NPY_LAYOUTS)
def test_npy_layouts(shape, model, to_file):
    n = 1 if len(shape) == 2 else shape[0]
    expected = np.random.default_rng(0).integers(0, 256, (n, *model), dtype=np.uint8)
    loaded = load_images(npy(to_file(expected)), model, name="x.npy")
    np.testing.assert_array_equal(loaded.images, expected / np.float32(255))
    assert loaded.sources == [f"x.npy[{i}]" for i in range(n)]
    assert loaded.display.shape == (n, *model[1:], 3)
    np.testing.assert_array_equal(loaded.display[..., 0], expected[:, 0])


@pytest.mark.parametrize(
    ("values", "scale"),
    [
        (np.array([0, 51, 255], dtype=np.uint8), 255),
        (np.array([0, 13107, 65535], dtype=np.uint16), 65535),
        (np.array([False, True, True]), 1),
        (np.array([0, 0.2, 1], dtype=np.float16), 1),
        (np.array([0, 0.2, 1], dtype=np.float32), 1),
        (np.array([0, 0.2, 1], dtype=np.float64), 1),
    ],
)
def test_npy_dtypes(values, scale):
    loaded = load_images(npy(np.broadcast_to(values[:, None, None], (3, 4, 4))), (1, 4, 4))
    expected = values.astype(np.float32) / np.float32(scale)
    np.testing.assert_array_equal(loaded.images[:, 0, 0, 0], expected)
    assert loaded.preprocessing["source_dtype"] == values.dtype.name


def test_npy_resize_with_torch():
    loaded = load_images(npy(np.full((2, 16, 16), 51, dtype=np.uint8)), GRAY)
    assert loaded.images.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(loaded.images, 0.2, atol=1e-6)
    assert loaded.preprocessing["resize"] == "bilinear" and loaded.preprocessing["resized"] == 2


@pytest.mark.parametrize(
    ("array", "model", "words"),
    [
        (np.array([[0.5, 1.5]]), (1, 1, 2), ["outside [0, 1]", "uint8"]),
        (np.array([[0.5, np.nan]]), (1, 1, 2), ["NaN"]),
        (np.zeros((2, 2), dtype=np.int64), (1, 2, 2), ["int64", "uint8"]),
        (np.zeros((2, 4, 4), dtype=np.uint8), RGB, ["no channel axis", "(n, H, W, 3)"]),
        (np.zeros((2, 4, 4, 2), dtype=np.uint8), RGB, ["(2, 4, 4, 2)", "(n, 3, H, W)"]),
        (np.zeros((0, 4, 4), dtype=np.uint8), GRAY, ["no images"]),
    ],
)
def test_bad_npy(array, model, words):
    message = error_of(npy(array), model)
    for word in words:
        assert word in message


class Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_object_npy_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    assert "Python objects" in error_of(buffer.getvalue(), GRAY)
    assert not marker.exists()
    np.load(io.BytesIO(buffer.getvalue()), allow_pickle=True)  # the payload does work
    assert marker.exists()


def fail_if_called(*args, **kwargs):
    raise AssertionError("decompressed or decoded before the limit was checked")


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("WHYBOX_MAX_IMAGES=2", ["3 images", "limit of 2 set by WHYBOX_MAX_IMAGES"]),
        ("WHYBOX_MAX_UNPACKED_MB=1", ["1.1 MiB", "limit of 1 MB set by WHYBOX_MAX_UNPACKED_MB"]),
    ],
)
def test_zip_limits_are_checked_before_decompressing(monkeypatch, setting, words):
    noise = np.random.default_rng(0).integers(0, 256, (3, 600, 640), dtype=np.uint8)
    raw = images_to_zip(noise, ["a", "b", "c"])  # noise: ~1.1 MiB of PNG that does not shrink
    monkeypatch.setenv(*setting.split("="))
    monkeypatch.setattr(zipfile.ZipFile, "open", fail_if_called)
    message = error_of(raw, GRAY)
    for word in words:
        assert word in message


def test_folder_limits(tmp_path, monkeypatch):
    for name in "abc":
        (tmp_path / f"{name}.png").write_bytes(encode(full(0)))
    monkeypatch.setenv("WHYBOX_MAX_IMAGES", "2")
    assert "3 images in the folder" in error_of(tmp_path, GRAY)


def test_pixel_limit_is_checked_before_decoding(monkeypatch):
    monkeypatch.setenv("WHYBOX_MAX_PIXELS", "63")
    monkeypatch.setattr(ImageFile.ImageFile, "load", fail_if_called)
    message = error_of(encode(full(0)), GRAY, name="big.png")
    assert "'big.png' is 8x8 = 64 pixels" in message
    assert "limit of 63 set by WHYBOX_MAX_PIXELS" in message


def test_pillow_decompression_bomb_is_a_whybox_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow refuses above twice this
    assert "too many pixels" in error_of(encode(full(0)), GRAY)


def test_image_memory_limit(monkeypatch):
    monkeypatch.setenv("WHYBOX_MAX_IMAGE_MEMORY_MB", "1")
    raw = images_to_zip(np.zeros((5, 256, 256), dtype=np.uint8), list("abcde"))
    message = error_of(raw, (1, 0, 0))  # any size: the images keep their 256x256
    assert "1.2 MiB as float32" in message and "WHYBOX_MAX_IMAGE_MEMORY_MB" in message
    assert "--image-size" in message


def test_member_larger_than_declared_is_not_read_past_its_size():
    raw = bytearray(zip_of({"a.png": encode(full(0))}))
    declared = 10
    struct.pack_into("<I", raw, 22, declared)  # local header: uncompressed size
    struct.pack_into("<I", raw, raw.find(b"PK\x01\x02") + 24, declared)  # central directory
    assert zipfile.ZipFile(io.BytesIO(bytes(raw))).infolist()[0].file_size == declared
    assert "'a.png' in the zip" in error_of(bytes(raw), GRAY)


def test_read_cap():
    assert images_module._read_capped(io.BytesIO(b"x" * 10), 10, "it") == b"x" * 10
    with pytest.raises(WhyboxError, match="more than its declared 10 bytes"):
        images_module._read_capped(io.BytesIO(b"x" * 100), 10, "it")


def test_encrypted_member_is_refused():
    raw = bytearray(zip_of({"a.png": encode(full(0))}))
    raw[6] |= 0x1  # local header flag bits
    raw[raw.find(b"PK\x01\x02") + 8] |= 0x1  # central directory flag bits
    assert "encrypted" in error_of(bytes(raw), GRAY)


@pytest.mark.parametrize("member", ["../evil.png", "/abs.png", "a\\..\\b.png", "C:/x.png"])
def test_unsafe_member_names_are_refused(member):
    assert repr(member) in error_of(zip_of({member: encode(full(0))}), GRAY)


@pytest.mark.parametrize(
    ("source", "model", "words"),
    [
        (b"GIF89a...", GRAY, ["'images' is not a PNG, JPEG, zip of images or .npy array"]),
        (b"", GRAY, ["is not a PNG"]),
        (
            zip_of({"bad.png": TRUNCATED_PNG}),
            GRAY,
            ["image 'bad.png' in the zip is damaged or not an image"],
        ),
        (
            zip_of({"x.png": b"hello"}),
            GRAY,
            ["image 'x.png' in the zip is damaged or not an image"],
        ),
        (
            zip_of({"x.png": encode(full(0), "GIF")}),
            GRAY,
            ["'x.png' in the zip is damaged or not an image: not a PNG or JPEG file"],
        ),
        (zip_of({"a.txt": b"hello"}), GRAY, ["no PNG or JPEG images in the zip"]),
        (b"PK\x05\x06" + b"\0" * 18, GRAY, ["no PNG or JPEG images in the zip"]),
        (b"PK\x03\x04garbage", GRAY, ["zip file is damaged"]),
        (SMALL_NPY.replace(b"(2, 4, 4)", b"(3, 4, 4)"), GRAY, [".npy file 'images' is damaged"]),
        (SMALL_NPY.replace(b"(2, 4, 4)", b"(9000000000000, 4)"), GRAY, ["is damaged or too large"]),
        (TRUNCATED_PNG, GRAY, ["damaged or not an image"]),
        (encode(full(0)), (2, 8, 8), ["1 (grayscale) or 3 (RGB)", "takes 2"]),
        (encode(full(0)), (1, 8), ["(C, H, W)"]),
        ("/no/such/file.png", GRAY, ["not found"]),
    ],
)
def test_bad_input_is_a_one_line_error(source, model, words):
    message = error_of(source, model)
    for word in words:
        assert word in message


def test_mean_and_std_are_validated_and_recorded_not_applied():
    raw = encode(full(51))
    loaded = load_images(raw, RGB, mean=[0.5], std=[0.1, 0.2, 0.3])
    assert loaded.preprocessing["mean"] == [0.5, 0.5, 0.5]
    assert loaded.preprocessing["std"] == [0.1, 0.2, 0.3]
    assert (loaded.images == np.float32(0.2)).all()
    assert "has 2 values" in error_of(raw, RGB, mean=[0.1, 0.2])
    assert "positive" in error_of(raw, RGB, std=[0.0])
    assert "finite" in error_of(raw, RGB, mean=[float("nan")])
    assert "must be numbers" in error_of(raw, RGB, mean=["red"])
    assert error_of(raw, GRAY, std=[1, 1]).endswith("give 1")


@pytest.mark.parametrize(
    ("text", "size"),
    [("224", (224, 224)), ("28x32", (28, 32)), ("28,32", (28, 32)), (" 4 X 5 ", (4, 5))],
)
def test_parse_image_size(text, size):
    assert parse_image_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "5000", "2x", "x2", "1.5", "2x3x4", "-3"])
def test_parse_image_size_refuses(text):
    with pytest.raises(WhyboxError, match="--image-size"):
        parse_image_size(text)


def test_parse_floats():
    assert parse_floats("0.485,0.456, 0.406") == [0.485, 0.456, 0.406]
    with pytest.raises(WhyboxError, match="comma-separated"):
        parse_floats("0.5;0.5")


@pytest.fixture(scope="module")
def ten() -> ImageSet:
    pixels = np.arange(10, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    return load_images(
        images_to_zip(pixels, [f"{i:02}" for i in range(10)]), (1, 4, 4), name="ten.zip"
    )


def test_background_is_reproducible(ten):
    sample = ten.background(3, seed=1)
    assert sample.shape == (3, 1, 4, 4)
    np.testing.assert_array_equal(sample, ten.background(3, seed=1))
    assert not np.array_equal(sample, ten.background(3, seed=2))
    firsts = sample[:, 0, 0, 0]
    assert (np.diff(firsts) > 0).all()  # sorted indices
    np.testing.assert_array_equal(ten.background(50), ten.images)
    with pytest.raises(WhyboxError, match="at least 1"):
        ten.background(0)


def test_summary_and_dataset_duck_typing(ten):
    summary = ten.summary()
    assert summary["name"] == "ten.zip" and summary["images"] == 10
    assert summary["shape"] == [1, 4, 4]
    assert summary["sources"] == [f"{i:02}.png" for i in range(10)]
    assert summary["preprocessing"]["input_shape"] == [1, 4, 4]
    assert summary["sha256"] == ten.sha256 and summary["notes"] == []
    assert len(ten) == 10 and ten.values is ten.images and ten.feature_names == []
    assert ten.labels is None and ten.label_name is None
