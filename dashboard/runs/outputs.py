"""What an image run leaves behind: the maps as .npy, an index CSV and one overlay per image.

Overlays draw the attribution, summed over channels, as a heat map over a grey copy of
the image: diverging colours (blue against, vermillion for) for signed methods, one
colour ramp for magnitudes. Colours saturate at the map's 99th percentile of |value|,
so one extreme pixel does not wash out the rest.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from whybox.explainers import Explanation
from whybox.model_zoo.categories import names
from whybox.model_zoo.chunks import chunk_slices, rows_per_chunk
from whybox.model_zoo.image_data import ImageSet
from whybox.model_zoo.model import file_sha256

MIN_OVERLAY_SIDE = 224
"""Small images are enlarged (nearest neighbour) so their overlays can be read."""
SATURATION_PERCENTILE = 99
HEAT_OPACITY = 0.75
# Okabe-Ito blue and vermillion, colour-blind safe, meeting at white.
NEGATIVE, POSITIVE, MIDDLE = (0, 114, 178), (213, 94, 0), (255, 255, 255)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """Neutralise spreadsheet formula injection in a user-provided name."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


CSV_CHUNK_BYTES = 16 * 2**20
"""Attribution bytes of the rows written to the CSV files at a time: a million rows never
sit in memory twice, as a frame and as text."""


def write_attributions(
    explanation: Explanation,
    out: Path,
    ids: pd.Series | None = None,
    id_name: str | None = None,
    typicality: list[dict] | None = None,
) -> dict[str, str]:
    """Write attributions.csv (each feature's attribution) and inputs.csv (each feature's
    value as the data gave it, categories by name, missing ones empty), with each row's
    identifier (the data's `id_name` column, where one was named) beside `row`, and, with
    a reference, each row's `typicality` and what makes it unusual at the end of
    attributions.csv; return {file name: SHA-256} of what was written."""
    paths = [out / "attributions.csv", out / "inputs.csv"]
    chunk = rows_per_chunk(explanation.values[:1].nbytes, CSV_CHUNK_BYTES)
    for part in list(chunk_slices(len(explanation.values), chunk)) or [slice(0, 0)]:
        frames = _csv_frames(explanation, part, typicality)
        for frame, path in zip(frames, paths, strict=True):
            if ids is not None:
                column = id_name if id_name and id_name not in frame.columns else "id"
                shown = ids.iloc[explanation.rows[part]]
                frame.insert(1, column, [safe_cell(str(v)) for v in shown])
            frame.columns = [safe_cell(str(c)) for c in frame.columns]
            first = part.start == 0
            frame.to_csv(path, mode="w" if first else "a", header=first, index=False,
                         float_format="%.10g")  # fmt: skip
    return sha256_files(out, paths)


def _csv_frames(
    explanation: Explanation, part: slice, typicality: list[dict] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The attributions and inputs of the rows in `part`, as the CSV files hold them."""
    shown = explanation.subset(np.arange(part.start, part.stop))
    attributions = shown.to_frame()
    if typicality is not None:
        scored = typicality[part]
        attributions["typicality"] = [row["typicality"] for row in scored]
        attributions["unusual_because"] = [  # said of the rows outside the reference only
            safe_cell("; ".join(row["reasons"])) if row["outside"] else "" for row in scored
        ]
    inputs = pd.DataFrame({"row": shown.rows})
    for j, feature in enumerate(shown.feature_names):
        column = shown.data[:, j]
        known = shown.categories.get(feature)
        inputs[feature] = (
            column
            if known is None
            else [None if name is None else safe_cell(str(name)) for name in names(known, column)]
        )
    return attributions, inputs


def sha256_files(out: Path, paths: list[Path]) -> dict[str, str]:
    """{path relative to `out`: SHA-256}."""
    return {str(path.relative_to(out)): file_sha256(path) for path in paths}


def _heat_colours(heat: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """RGB (H, W, 3) and opacity (H, W) for a map scaled to [-1, 1] (or [0, 1])."""
    strength = np.abs(heat)
    colour = np.where(heat[..., None] >= 0, POSITIVE, NEGATIVE).astype(np.float64)
    if not signed:
        colour = np.broadcast_to(np.asarray(POSITIVE, dtype=np.float64), (*heat.shape, 3))
    colour = MIDDLE + (colour - MIDDLE) * np.sqrt(strength)[..., None]
    return colour, HEAT_OPACITY * strength


def overlay(display: np.ndarray, values: np.ndarray, signed: bool) -> Image.Image:
    """A heat map of `values` (C, H, W) over the RGB image `display` (H, W, 3)."""
    heat = values.sum(axis=0).astype(np.float64)
    if not signed:
        heat = np.clip(heat, 0, None)
    scale = np.percentile(np.abs(heat), SATURATION_PERCENTILE)
    heat = np.clip(heat / scale, -1, 1) if scale > 0 else np.zeros_like(heat)
    grey = display.astype(np.float64).mean(axis=2, keepdims=True).repeat(3, axis=2)
    colour, opacity = _heat_colours(heat, signed)
    blended = grey * (1 - opacity[..., None]) + colour * opacity[..., None]
    image = Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))
    factor = max(1, -(-MIN_OVERLAY_SIDE // max(image.size)))
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    return image


def overlay_name(row: int, source: str) -> str:
    """A safe, unique file name for an image's overlay: its row and its cleaned-up name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).stem)[:60] or "image"
    return f"{row:05d}_{stem}.png"


def write_image_attributions(
    explanation: Explanation, images: ImageSet, out: Path, typicality: list[dict] | None = None
) -> dict[str, str]:
    """Write attributions.npy, attributions_index.csv (with each image's `typicality`, where
    a reference was given) and overlays/; return file SHA-256s."""
    written: list[Path] = []
    maps = out / "attributions.npy"
    np.save(maps, explanation.values.astype(np.float32), allow_pickle=False)
    written.append(maps)
    names = explanation.output_names
    index = pd.DataFrame(
        {
            "row": explanation.rows,
            "source": [safe_cell(images.sources[r]) for r in explanation.rows],
            "prediction": explanation.predictions,
            "target": [safe_cell(names[t]) for t in explanation.target],
            "base_value": explanation.base_values,
        }
    )
    if typicality is not None:
        index["typicality"] = [row["typicality"] for row in typicality]
    index_path = out / "attributions_index.csv"
    index.to_csv(index_path, index=False, float_format="%.10g")
    written.append(index_path)
    overlays = out / "overlays"
    overlays.mkdir(exist_ok=True)
    for position, row in enumerate(explanation.rows):
        path = overlays / overlay_name(int(row), images.sources[row])
        overlay(images.display[row], explanation.values[position], explanation.signed).save(path)
        written.append(path)
    return sha256_files(out, written)
