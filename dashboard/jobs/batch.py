"""Explanations of a table too large for one process: its partitions explained one after
another on this machine (streaming, bounded memory) or on a Ray cluster, written as
`attributions/part-*.parquet` as they finish, with one run.json for the whole run.

Every partition is explained as a single-machine run of the whole table would explain its
rows: seeded methods draw per row (`explainers.seeding`), and the background is the whole
table's sample (`Dataset.background`), drawn once here and given to every partition. So the
values are the same whatever the partitioning and the number of workers.

A part file records the run it belongs to (a fingerprint of model, data, method and
partitioning): the same command run again skips the partitions already written.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from whybox.dashboard.jobs.partitions import Partition, PartitionedImages, PartitionedTable
from whybox.explainers import registry
from whybox.explainers.auto import Auto
from whybox.explainers.base import Explainer, Explanation
from whybox.model_zoo import Dataset, Model, WhyboxError, demos, load_model
from whybox.model_zoo.data import background_rows, table_dataset
from whybox.model_zoo.formats import first_line
from whybox.model_zoo.image_data import ImageSet, images_from_files
from whybox.model_zoo.model import sha256_of

PARTS = "attributions"
RUN_KEY = b"whybox.run"
RECORD_KEY = b"whybox.explanation"


@dataclass(frozen=True)
class ModelSource:
    """The model as plain data for a worker: a demo reference or the file's bytes."""

    name: str
    sha256: str
    raw: bytes | None = field(default=None, repr=False)
    demo: str | None = None
    trusted: bool = False

    @classmethod
    def of(cls, spec: str, model: Model, trusted: bool) -> ModelSource:
        """`spec` as `whybox explain` takes it (a path or demo:NAME), already loaded as
        `model` (so a bad file failed here, not on every worker)."""
        if spec.startswith("demo:"):
            return cls(name=spec, sha256=model.sha256, demo=spec)
        raw = Path(spec).read_bytes()
        return cls(name=Path(spec).name, sha256=sha256_of(raw), raw=raw, trusted=trusted)

    def load(self) -> Model:
        if self.demo is not None:
            return demos.resolve_model(self.demo)
        return load_model(self.raw, name=self.name, trusted=self.trusted, isolated=False)


@dataclass(frozen=True, eq=False)
class BatchJob:
    """What every partition needs, shipped once to each worker."""

    model: ModelSource
    explainer: str
    params: dict[str, Any]
    target: str | int | None
    label: str | None
    id: str | None
    data_name: str
    data_sha256: str
    partition_rows: int
    images: tuple[tuple[str, Any], ...] = ()
    """For an image model: how its images are read (image_size, mean, std)."""
    background: np.ndarray | None = field(default=None, repr=False)
    """The whole table's `background(n, seed)` for the method's n and seed, if it takes one."""

    @property
    def fingerprint(self) -> str:
        """What makes two runs' part files interchangeable."""
        keys = (
            self.model.sha256,
            self.data_sha256,
            self.explainer,
            sorted(self.params.items()),
            self.target,
            self.label,
            self.id,
            self.partition_rows,
            self.images,
        )
        return hashlib.sha256(repr(keys).encode()).hexdigest()


@dataclass
class _WholeBackground:
    """A partition whose background is the whole data's (drawn once, up front)."""

    whole_background: np.ndarray | None = None
    background_of: tuple[int, int] | None = None

    def background(self, n: int, seed: int = 0) -> np.ndarray:
        if self.whole_background is None or (n, seed) != self.background_of:
            raise WhyboxError(
                f"a partition has no background of {n} rows with seed {seed}; the run drew "
                f"{self.background_of}"
            )
        return self.whole_background.copy()


@dataclass
class PartDataset(_WholeBackground, Dataset):
    """One partition of a table."""


@dataclass
class PartImages(_WholeBackground, ImageSet):
    """One partition of a folder or zip of images."""


@dataclass
class PartResult:
    """A partition explained: its rows numbered in the whole table, and their identifiers."""

    name: str
    explanation: Explanation
    ids: np.ndarray | None
    id_name: str | None
    """The identifier column (`--id`), or `source` (each image's file name)."""


@dataclass
class PartFailure:
    """A partition that failed, the first and last row it holds, and why (rows named in the
    error count from the partition's first)."""

    name: str
    rows: tuple[int, int]
    error: str


Outcome = PartResult | PartFailure
Runner = Callable[[BatchJob, Iterable[Partition]], Iterator[Outcome]]

_models: dict[tuple, Model] = {}  # a worker process keeps one model copy


def explain_partition(job: BatchJob, partition: Partition) -> PartResult:
    """Explain one partition where it runs (this process or a Ray worker)."""
    key = (job.model.sha256, job.images)
    model = _models.get(key)
    if model is None:
        _models.clear()
        model = _models[key] = normalized(job.model.load(), job)
    dataset = part_dataset(job, model, partition)
    explainer = registry.get(job.explainer)(**job.params)
    explanation = explainer.explain(model, dataset, target=job.target)
    explanation.rows = explanation.rows + partition.first_row
    if isinstance(dataset, ImageSet):
        return PartResult(partition.name, explanation, np.array(dataset.sources), "source")
    ids = None if dataset.ids is None else dataset.ids.to_numpy()
    return PartResult(partition.name, explanation, ids, dataset.id_name)


def normalized(model: Model, job: BatchJob) -> Model:
    """An image model fed (x - mean) / std, as `whybox explain` feeds it."""
    options = dict(job.images)
    return model.normalized(options.get("mean"), options.get("std")) if options else model


def part_dataset(job: BatchJob, model: Model, partition: Partition) -> PartDataset | PartImages:
    """The partition read and checked as the whole would be, with the whole's background."""
    loaded = _read(job, model, partition.content, f"{job.data_name} {partition.name}")
    n, seed = job.params.get("background"), job.params.get("seed", 0)
    kind = PartImages if isinstance(loaded, ImageSet) else PartDataset
    return kind(
        **vars(loaded),
        whole_background=job.background,
        background_of=None if n is None else (int(n), int(seed)),
    )


def _read(job: BatchJob, model: Model, content: Any, name: str) -> Dataset | ImageSet:
    """Some rows of the data (a frame, or images as (name, bytes)) as the whole is read."""
    if model.modality == "image":
        return images_from_files(
            content, model.input_shape, name=name, sha256=job.data_sha256, **dict(job.images)
        )
    return table_dataset(content.copy(), model, job.label, job.id, name, job.data_sha256, part=True)


def run_here(job: BatchJob, partitions: Iterable[Partition]) -> Iterator[Outcome]:
    """Explain the partitions one after another in this process."""
    for partition in partitions:
        try:
            yield explain_partition(job, partition)
        except WhyboxError as exc:
            yield PartFailure(partition.name, partition.rows, str(exc))
        except Exception as exc:  # a partition's own failure is reported; the others go on
            yield PartFailure(
                partition.name, partition.rows, f"{type(exc).__name__}: {first_line(exc)}"
            )


def plan(
    model_spec: str,
    model: Model,
    table: PartitionedTable | PartitionedImages,
    explainer: Explainer,
    target: str | int | None,
    label: str | None,
    id: str | None,
    trusted: bool,
    images: dict[str, Any] | None = None,
) -> tuple[BatchJob, list[str]]:
    """The job for every partition, and notes on how it was set up: `auto` picks its method
    here once, on the first partition, and the background is drawn from the whole data.
    `images` are the image options (image_size, mean, std) of an image model."""
    source = ModelSource.of(model_spec, model, trusted)
    job = BatchJob(
        source,
        explainer.name,
        explainer.get_params(),
        target,
        label,
        id,
        table.name,
        table.sha256(),
        table.partition_rows,
        tuple(sorted((k, v) for k, v in (images or {}).items() if v is not None)),
    )
    notes = []
    model = normalized(model, job)
    if isinstance(explainer, Auto):
        first = next(table.partitions())
        chosen, reason = explainer.pick(model, _read(job, model, first.content, first.name))
        notes.append(f"{explainer.name} chose {chosen.name} on {first.name}: {reason}")
        job = replace(job, explainer=chosen.name, params=chosen.get_params())
    n = job.params.get("background")
    if n is not None:
        index = background_rows(table.rows, int(n), int(job.params.get("seed", 0)))
        sample = table.take(np.arange(table.rows) if index is None else index)
        try:
            drawn = _read(job, model, sample, table.name)
        except WhyboxError as exc:
            raise WhyboxError(f"in the background rows drawn from the whole table: {exc}") from None
        job = replace(job, background=drawn.values)
    return job, notes


class BatchRun:
    """Writes a partitioned run into `out`: parts as they finish, run.json at the end."""

    def __init__(self, job: BatchJob, out: Path, total_rows: int) -> None:
        self.job, self.out, self.total_rows = job, Path(out), total_rows
        self.parts = self.out / PARTS
        self.parts.mkdir(parents=True, exist_ok=True)
        self.failures: list[PartFailure] = []

    def finished(self) -> set[str]:
        """Names of the partitions already written for this run (resumed, not redone);
        parts of another run are an error, never mixed in."""
        done = set()
        for path in sorted(self.parts.glob("part-*.parquet")):
            metadata = pq.read_schema(path).metadata or {}
            if metadata.get(RUN_KEY, b"").decode() != self.job.fingerprint:
                raise WhyboxError(
                    f"{self.out} holds attributions of another run ({path.name}); give an "
                    "empty --out directory, or the same model, data and options to resume"
                )
            done.add(path.stem)
        return done

    def run(
        self,
        table: PartitionedTable,
        runner: Runner,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Explain the partitions not yet written, writing each as it comes back."""
        done_names = self.finished()
        done_rows = sum(
            pq.read_metadata(self.parts / f"{name}.parquet").num_rows for name in done_names
        )
        pending = (p for p in table.partitions() if p.name not in done_names)
        for outcome in runner(self.job, pending):
            if isinstance(outcome, PartFailure):
                self.failures.append(outcome)
                continue
            self.write(outcome)
            done_rows += len(outcome.explanation.values)
            if progress is not None:
                progress(done_rows, self.total_rows)

    def write(self, part: PartResult) -> None:
        """One part file, whole or not at all (written aside, then renamed)."""
        explained = part.explanation
        values = explained.values
        columns: dict[str, Any] = {"row": explained.rows}
        if part.ids is not None:
            columns[part.id_name if part.id_name not in explained.feature_names else "id"] = (
                part.ids
            )
        if values.ndim > 2:  # an image's map as one list of C x H x W float32, its shape below
            flat = values.astype(np.float32).reshape(len(values), -1)
            columns["attribution"] = pa.FixedSizeListArray.from_arrays(flat.ravel(), flat.shape[1])
        else:
            columns |= {name: values[:, j] for j, name in enumerate(explained.feature_names)}
        columns["target"] = [explained.output_names[int(t)] for t in explained.target]
        columns["base_value"], columns["prediction"] = explained.base_values, explained.predictions
        record = explained.record() | {
            "features": explained.feature_names,
            "shape": list(values.shape[1:]),
        }
        metadata = {RUN_KEY: self.job.fingerprint, RECORD_KEY: json.dumps(record)}
        table = pa.table(columns).replace_schema_metadata(metadata)
        path = self.parts / f"{part.name}.parquet"
        aside = path.with_suffix(".parquet.writing")
        pq.write_table(table, aside)
        os.replace(aside, path)

    def save(
        self, model: Model, command: list[str], notes: list[str], where: str, seconds: float
    ) -> dict[str, Any]:
        """run.json for the whole run, complete or not, from the part files on disk."""
        from whybox.dashboard.runs.outputs import sha256_files
        from whybox.dashboard.runs.records import library_versions

        paths = sorted(self.parts.glob("part-*.parquet"))
        summary = _summarise(paths)
        job = self.job
        n = job.params.get("background")
        record = {
            "run_id": uuid.uuid4().hex,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "partitioned": True,
            "complete": not self.failures and summary["rows"] == self.total_rows,
            "cluster": where,
            "model": model.summary(),
            "data": {
                "name": job.data_name,
                "sha256": job.data_sha256,
                "rows": self.total_rows,
                "label": job.label,
                "id": job.id,
                "partition_rows": job.partition_rows,
            },
            "explainer": job.explainer,
            **summary["record"],
            "rows": summary["rows"],
            "notes": notes + summary["record"]["notes"],
            "wall_seconds": round(seconds, 3),
            "background": None
            if n is None
            else {
                "rows": min(int(n), self.total_rows),
                "of": self.total_rows,
                "seed": job.params["seed"],
            },
            "global": summary["global"],
            "partitions": summary["partitions"],
            "failed": [
                {"partition": f.name, "rows": list(f.rows), "error": f.error} for f in self.failures
            ],
            "versions": library_versions(),
            "files": sha256_files(self.out, paths),
        }
        (self.out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
        return record


def _summarise(paths: list[Path]) -> dict[str, Any]:
    """The whole run from its part files: rows, per-partition facts, the method's record
    (seconds summed, the worst additivity gap, notes and failures of every part, each
    said once), and each feature's mean |attribution| over every row."""
    totals: np.ndarray | None = None
    features: list[str] = []
    rows, partitions, records = 0, [], []
    for path in paths:
        part = pq.read_table(path)
        record = json.loads(part.schema.metadata[RECORD_KEY])
        records.append(record)
        features = record["features"]
        if features:  # an image's map has no features to rank
            values = np.column_stack([part.column(f).to_numpy() for f in features])
            sums = np.abs(values).sum(axis=0)
            totals = sums if totals is None else totals + sums
        rows += part.num_rows
        first = int(part.column("row")[0].as_py())
        partitions.append(
            {
                "name": path.stem,
                "first_row": first,
                "rows": part.num_rows,
                "seconds": record["seconds"],
            }
        )
    if not records:
        return {"rows": 0, "record": {"notes": []}, "global": {}, "partitions": []}
    gaps = [r["additivity_gap"] for r in records if r["additivity_gap"] is not None]
    merged = {
        **records[0],
        "target": sorted({t for r in records for t in r["target"]}),
        "seconds": round(sum(r["seconds"] for r in records), 4),
        "additivity_gap": max(gaps) if gaps else None,
        "notes": list(dict.fromkeys(n for r in records for n in r["notes"])),
        "failures": list(dict.fromkeys(f for r in records for f in r["failures"])),
    }
    merged.pop("rows")
    mean = [] if totals is None else (totals / rows).tolist()
    return {
        "rows": rows,
        "record": merged,
        "global": dict(zip(features, mean, strict=True)),
        "partitions": partitions,
    }


def resume_hint(out: Path) -> str:
    return f"run the same command again to finish: the partitions in {out / PARTS} are kept"
