"""The typicality scorer of a reference, for tables or images alike: what the command
line and the dashboard build from the reference a user gives."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from whybox.model_zoo import Dataset, Model
from whybox.model_zoo.data import load_reference
from whybox.model_zoo.image_data import ImageSet, load_images
from whybox.trust.images import ImageTypicality
from whybox.trust.typicality import Typicality


def reference_scorer(
    source: bytes | Path,
    model: Model,
    data: Dataset | ImageSet,
    coded: Mapping[str, Mapping[float, str]] | None = None,
    name: str | None = None,
) -> Typicality | ImageTypicality:
    """The scorer of the reference in `source` for the rows (or images) of `data`: a table
    matched to the data by `load_reference` (`coded` columns compared as categories), or
    images read as the data's were (size, mean and std)."""
    if isinstance(data, Dataset):
        return Typicality(load_reference(source, data, name), coded=coded)
    images = load_images(
        source,
        model.input_shape,
        name=name,
        image_size=tuple(data.images.shape[2:]),
        mean=data.preprocessing.get("mean"),
        std=data.preprocessing.get("std"),
    )
    return ImageTypicality(model, images)
