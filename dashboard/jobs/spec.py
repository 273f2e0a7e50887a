"""What a job is: its inputs named by content, and the explanation asked of them.

A `JobSpec` is plain data (picklable, no model or framework object inside), so that any
executor, a local process pool or a cluster, can rebuild the model and data where it runs
and give the same numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from whybox.model_zoo import WhyboxError

if TYPE_CHECKING:  # a worker imports it (and pandas) only with a job that has a table
    from whybox.dashboard.jobs.shared import SharedTable


@dataclass(frozen=True)
class Source:
    """One model or data file, named by its SHA-256, and what rebuilds it elsewhere: a demo
    reference (`demo:credit-mlp`), the uploaded bytes and file name, or the path of a file
    in the operator's server data folder (read where the job runs, so a large file is never
    copied to a worker). `options` are the data options the session chose (label column;
    image size, mean and std), which decide what the bytes load as."""

    sha256: str
    name: str
    demo: str | None = None
    raw: bytes | None = field(default=None, repr=False)
    options: tuple[tuple[str, Any], ...] = ()
    path: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.demo, self.raw, self.path)) != 1:
            raise ValueError("a Source is one of a demo reference, uploaded bytes or a path")

    @classmethod
    def of_demo(cls, reference: str, sha256: str) -> Source:
        return cls(sha256=sha256, name=reference, demo=reference)

    @classmethod
    def of_upload(cls, raw: bytes, name: str, sha256: str, **options: Any) -> Source:
        """`sha256` is the server's digest of `raw` (see model_zoo.model.sha256_of)."""
        return cls(sha256=sha256, name=name, raw=raw, options=_fixed(options))

    @classmethod
    def of_path(cls, path: Path, sha256: str, **options: Any) -> Source:
        """A file of the server data folder, by its resolved `path` and the `sha256` of its
        content when it was chosen (see `file_sha256`)."""
        return cls(sha256=sha256, name=path.name, path=str(path), options=_fixed(options))

    def with_options(self, **options: Any) -> Source:
        """The same file read with these data options."""
        return replace(self, options=_fixed(options))

    def content(self) -> bytes:
        """The uploaded bytes, or the file's bytes once checked against `sha256`: a file
        changed on disk since it was chosen is an error, never other numbers."""
        if self.path is None:
            if self.raw is None:
                raise ValueError(f"{self.name!r} is a demo; resolve it by its reference")
            return self.raw
        try:
            raw = Path(self.path).read_bytes()
        except OSError as exc:
            raise WhyboxError(
                f"the server file {self.name!r} cannot be read: {exc.strerror}"
            ) from None
        if hashlib.sha256(raw).hexdigest() != self.sha256:
            raise WhyboxError(
                f"the server file {self.name!r} changed on disk since it was chosen; choose it "
                "again in the sidebar"
            )
        return raw

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies the loaded result: content, file name (it decides the format) and
        options; never the bytes themselves."""
        return (self.sha256, self.name, self.demo, self.options)


def _fixed(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Data options as a sorted tuple, lists made tuples, so a Source hashes and compares."""
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return tuple(sorted(fixed.items()))


@dataclass(frozen=True, eq=False)
class JobSpec:
    """One explanation: `explainer` with `params` on `rows` of `data` for class `target`.

    `edits` replace whole rows of the data before explaining (the Local view's what-if),
    each as (row, values in the data's column order). `submitter` names who asked (the
    browser session); an executor returns the result to that caller only.
    """

    model: Source
    data: Source
    explainer: str
    params: dict[str, Any]
    rows: np.ndarray
    target: str | int | None = None
    edits: tuple[tuple[int, tuple[float, ...]], ...] = ()
    submitter: str = ""
    table: SharedTable | None = None
    """The session's copy of the data in shared memory, where a local worker can map it
    instead of reading `data` again (see `shared`)."""

    def __post_init__(self) -> None:
        rows = np.array(self.rows, dtype=np.int64).reshape(-1)
        rows.flags.writeable = False
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "params", dict(self.params))

    @property
    def one_row(self) -> bool:
        """A single row or image: what a user waits on interactively (a what-if edit, a
        method beside another on one image, one clicked row)."""
        return len(self.rows) == 1

    def describe(self) -> str:
        """A short label for the user: the method and the rows."""
        return f"{self.explainer} on {_rows_text(self.rows)}"


def _rows_text(rows: Sequence[int]) -> str:
    if len(rows) == 1:
        return f"row {rows[0]}"
    if len(rows) and np.all(np.diff(rows) == 1):
        return f"rows {rows[0]}:{rows[-1] + 1}"
    return f"{len(rows)} rows"
