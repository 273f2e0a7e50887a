"""Data too large to hold at once, read in partitions of at most a set number of rows: a
Parquet file, a folder of them or a CSV file in chunks (`PartitionedTable`), or the images
of a folder or zip (`PartitionedImages`).

Partitions are numbered in reading order (`part-00000`, ...) and carry the position of
their first row in the whole table, so the same file and partition size give the same
partitions on every run (what lets a run resume) and every row keeps its number.
"""

from __future__ import annotations

import contextlib
import hashlib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.image_data import digest_image, folder_images, read_zip_image, zip_images
from whybox.model_zoo.model import file_sha256
from whybox.model_zoo.tables import sniff_delimiter

PARTITION_ROWS = 100_000
"""Rows per partition by default: 50 features of them are 40 MB of float64, small beside a
worker's memory, large enough that a partition's fixed costs (a task, a file) are noise."""

IMAGE_PARTITION_ROWS = 256
"""Images per partition by default: 256 at 224 x 224 are 150 MB of float32, a few GPU
batches."""


@dataclass(frozen=True)
class Partition:
    """Rows `first_row` to `first_row + len(content)` of the data, as read: a frame of the
    table's raw columns, or (name, bytes) of each image."""

    index: int
    first_row: int
    content: pd.DataFrame | list[tuple[str, bytes]]

    @property
    def name(self) -> str:
        return partition_name(self.index)

    @property
    def rows(self) -> tuple[int, int]:
        """The first and last row's number in the whole table."""
        return self.first_row, self.first_row + len(self.content) - 1


def partition_name(index: int) -> str:
    return f"part-{index:05d}"


class PartitionedTable:
    """A table on disk read a partition at a time: `files` (in order), their `rows` in all,
    their SHA-256, and the partitions themselves."""

    def __init__(self, path: str | Path, partition_rows: int = PARTITION_ROWS) -> None:
        path = Path(path)
        if partition_rows < 1:
            raise WhyboxError(f"partitions need at least 1 row (got {partition_rows})")
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".parquet")
            if not self.files:
                raise WhyboxError(
                    f"the folder {str(path)!r} holds no .parquet files; give a Parquet file, a "
                    "folder of them, or a CSV file"
                )
        elif path.is_file():
            self.files = [path]
        else:
            raise WhyboxError(f"no such data file or folder: {path}")
        self.parquet = self.files[0].suffix.lower() == ".parquet"
        if not self.parquet and path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            raise WhyboxError(
                f"{path.name!r} cannot be read in partitions; give a Parquet file, a folder of "
                "them, or a CSV file (other formats: convert to Parquet first)"
            )
        self.name = path.name
        self.partition_rows = partition_rows
        self._rows: int | None = None

    @property
    def rows(self) -> int:
        """Rows in all: from the Parquet footers, or counted in one pass over a CSV."""
        if self._rows is None:
            if self.parquet:
                self._rows = sum(self._parquet(file).metadata.num_rows for file in self.files)
            else:
                self._rows = sum(len(p.content) for p in self.partitions())
        return self._rows

    def sha256(self) -> str:
        """The content's digest: the file's own, or, for a folder, of each file's name and
        digest in order."""
        digests = [(file.name, file_sha256(file)) for file in self.files]
        if len(digests) == 1:
            return digests[0][1]
        return hashlib.sha256(repr(digests).encode()).hexdigest()

    def partitions(self) -> Iterator[Partition]:
        """Every partition in order, each read when it is asked for."""
        frames = self._parquet_frames() if self.parquet else self._csv_frames()
        first = 0
        for index, frame in enumerate(frames):
            yield Partition(index, first, frame.reset_index(drop=True))
            first += len(frame)

    def take(self, rows: np.ndarray) -> pd.DataFrame:
        """The rows at sorted positions `rows` of the whole table, in one pass."""
        picked = []
        for part in self.partitions():
            inside = rows[(rows >= part.first_row) & (rows < part.first_row + len(part.content))]
            if len(inside):
                picked.append(part.content.iloc[inside - part.first_row])
        return pd.concat(picked, ignore_index=True)

    def _parquet(self, file: Path) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(file, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise WhyboxError(f"{file.name!r} is not a readable Parquet file: {exc}") from None

    def _parquet_frames(self) -> Iterator[pd.DataFrame]:
        """Each file's rows in frames of `partition_rows` (the last of a file shorter):
        record batches, which may be cut at row groups, are joined back to that size."""
        columns = None
        for file in self.files:
            reader = self._parquet(file)
            if columns is None:
                columns = reader.schema_arrow.names
            elif reader.schema_arrow.names != columns:
                raise WhyboxError(
                    f"{file.name!r} has other columns than {self.files[0].name!r}; every "
                    "Parquet file of the folder must have the same columns"
                )
            held: list[pa.RecordBatch] = []
            count = 0
            for batch in reader.iter_batches(batch_size=self.partition_rows):
                held.append(batch)
                count += batch.num_rows
                while count >= self.partition_rows:
                    table = pa.Table.from_batches(held)
                    yield table.slice(0, self.partition_rows).to_pandas()
                    rest = table.slice(self.partition_rows)
                    held, count = rest.to_batches(), rest.num_rows
            if count:
                yield pa.Table.from_batches(held).to_pandas()

    def _csv_frames(self) -> Iterator[pd.DataFrame]:
        file = self.files[0]
        with file.open("rb") as handle:
            head = handle.read(65536).decode("utf-8-sig", errors="replace")
        try:
            yield from pd.read_csv(
                file,
                sep=sniff_delimiter(head),
                chunksize=self.partition_rows,
                encoding="utf-8-sig",
                low_memory=False,
            )
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WhyboxError(
                f"{file.name!r} could not be read in chunks ({first}); save it as UTF-8 CSV "
                "with a period for decimals, or as Parquet"
            ) from None


class PartitionedImages:
    """The images of a folder or zip read a partition at a time, in the order and with the
    digest `load_images` gives the whole (so a run names the same data either way)."""

    def __init__(self, path: str | Path, partition_rows: int = IMAGE_PARTITION_ROWS) -> None:
        self.path, self.name = Path(path), Path(path).name
        if partition_rows < 1:
            raise WhyboxError(f"partitions need at least 1 image (got {partition_rows})")
        self.partition_rows = partition_rows
        if self.path.is_dir():
            self.names = [p.name for p in folder_images(self.path)[0]]
        elif zipfile.is_zipfile(self.path):
            with zipfile.ZipFile(self.path) as archive:
                self.names = [info.filename for info in zip_images(archive)[0]]
        else:
            raise WhyboxError(
                f"{self.name!r} cannot be read in partitions; give a folder or zip of images"
            )
        if not self.names:
            raise WhyboxError(f"{self.name!r} holds no PNG or JPEG images")
        self.rows = len(self.names)

    def sha256(self) -> str:
        if not self.path.is_dir():
            return file_sha256(self.path)
        digest = hashlib.sha256()
        for name in self.names:
            digest_image(digest, name, (self.path / name).read_bytes())
        return digest.hexdigest()

    def partitions(self) -> Iterator[Partition]:
        with self._reader() as read:
            for index, first in enumerate(range(0, self.rows, self.partition_rows)):
                names = self.names[first : first + self.partition_rows]
                yield Partition(index, first, [(name, read(name)) for name in names])

    def take(self, rows: np.ndarray) -> list[tuple[str, bytes]]:
        """The images at positions `rows`."""
        with self._reader() as read:
            return [(self.names[row], read(self.names[row])) for row in rows.tolist()]

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Callable[[str], bytes]]:
        """A function from an image's name to its bytes, for the length of a `with`."""
        if self.path.is_dir():
            yield lambda name: (self.path / name).read_bytes()
            return
        with zipfile.ZipFile(self.path) as archive:
            yield lambda name: read_zip_image(archive, archive.getinfo(name))
