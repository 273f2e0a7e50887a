"""A job's model and data rebuilt from their sources where the job runs, as the app built
them, and kept by content for the jobs that follow.

Uploads load with the same rules as in the app (`load_model`, `load_data`, `load_images`),
never by unpickling anything the user sent. The app ran the sandboxed check when the file
was uploaded, so the model loads here without a second child process. An image model is
normalised by the data's mean and std exactly as the app's sidebar does.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from whybox.dashboard.jobs import shared
from whybox.dashboard.jobs.spec import JobSpec, Source
from whybox.explainers import registry
from whybox.explainers.base import Explanation, Progress
from whybox.model_zoo import Dataset, Model, WhyboxError, demos, load_data, load_model
from whybox.model_zoo.image_data import ImageSet, load_images

T = TypeVar("T")
KEPT = 4
"""Models, data sets and normalised models each kept per worker (least recently used go)."""
KEPT_DATA_BYTES = 512 * 2**20
"""Data sets kept beside the latest one only while all together stay under this: a worker
does not hold several copies of a table of a million rows read with other options."""


class _Kept:
    """A small least-recently-used store: at most `size` items and, where `weight` says
    what an item costs, at most `budget` together (the latest is kept whatever it costs)."""

    def __init__(
        self, size: int, weight: Callable[[Any], int] = lambda _: 0, budget: int = 0
    ) -> None:
        self.size, self.weight, self.budget = size, weight, budget
        self.items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = make()
        self.items[key] = value
        while len(self.items) > self.size or (len(self.items) > 1 and self._over_budget()):
            self.items.popitem(last=False)
        return value

    def _over_budget(self) -> bool:
        return sum(map(self.weight, self.items.values())) > self.budget


def _nbytes(data: Dataset | ImageSet) -> int:
    if isinstance(data, ImageSet):
        return data.images.nbytes + data.display.nbytes
    return int(data.frame.memory_usage(index=False).sum())


_models, _normalized = _Kept(KEPT), _Kept(KEPT)
_data = _Kept(KEPT, _nbytes, KEPT_DATA_BYTES)


def run(spec: JobSpec, progress: Progress | None = None, table: int | None = None) -> Explanation:
    """Rebuild the job's inputs and explain, as the app would have in its own process;
    `table`: a descriptor of the session's table in shared memory (`spec.table`), which
    this takes and closes.

    The result carries the explained rows' values only where the job edited them: the
    session that asked has its own rows and puts them back (`session.with_rows`), so the
    rows of a large job never travel back nor sit twice in the server's memory."""
    model, data = inputs(spec, table)
    explainer = registry.get(spec.explainer)(**spec.params)
    explanation = explainer.explain(
        model, data, rows=spec.rows, target=spec.target, progress=progress
    )
    if spec.edits:
        return explanation
    shape = (0, *explanation.data.shape[1:])
    return replace(explanation, data=np.empty(shape, dtype=explanation.data.dtype))


def inputs(spec: JobSpec, table: int | None = None) -> tuple[Model, Dataset | ImageSet]:
    """The model and data of `spec` (data with its `edits` applied); the data mapped from
    the session's shared `table` (a descriptor, closed here) where one is given."""
    data_key = (spec.data.key, spec.model.key)
    try:
        model = _models.get(spec.model.key, lambda: _load_model(spec.model))
        if spec.table is not None and table is not None:
            data = _data.get(
                data_key, lambda: _checked(shared.attach(spec.table, table), spec.data, "data")
            )
        else:
            data = _data.get(data_key, lambda: _load_data(spec.data, model))
    finally:
        if table is not None:
            os.close(table)
    if isinstance(data, ImageSet):
        mean, std = data.preprocessing["mean"], data.preprocessing["std"]
        base = model
        model = _normalized.get(data_key, lambda: base.normalized(mean, std))
    if spec.edits:
        data = edited(data, spec.edits)
    return model, data


def edited(data: Dataset, edits: tuple[tuple[int, tuple[float, ...]], ...]) -> Dataset:
    """A copy of tabular `data` with whole rows replaced (a what-if)."""
    if not isinstance(data, Dataset):
        raise WhyboxError("rows can be edited in tabular data only")
    frame = data.frame.astype(np.float64)
    for row, values in edits:
        frame.iloc[row] = values
    return Dataset(
        frame=frame,
        sha256=f"{data.sha256}:what-if",
        name="what-if",
        categories=data.categories,
    )


def _load_model(source: Source) -> Model:
    if source.demo is not None:
        model = demos.resolve_model(source.demo)
    else:
        model = load_model(source.content(), name=source.name, isolated=False)
    return _checked(model, source, "model")


def _load_data(source: Source, model: Model) -> Dataset | ImageSet:
    options: dict[str, Any] = dict(source.options)
    if source.demo is not None:
        data = demos.resolve_data(source.demo, model, **options)
    elif model.modality == "image":
        data = load_images(source.content(), model.input_shape, name=source.name, **options)
    else:
        limited = source.path is None  # the server folder's files are the operator's own
        data = load_data(source.content(), model, name=source.name, limited=limited, **options)
    return _checked(data, source, "data")


def _checked(loaded: T, source: Source, what: str) -> T:
    """The content loaded is the content the job names (a demo cache rebuilt since, or a
    mix-up of sources, is an error, never silently other numbers)."""
    if loaded.sha256 != source.sha256:
        raise WhyboxError(
            f"the {what} {source.name!r} loaded with SHA-256 {loaded.sha256[:12]}..., not "
            f"{source.sha256[:12]}... as the job names it; load it again"
        )
    return loaded
