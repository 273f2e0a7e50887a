"""One copy of a session's table for the server and its job workers.

The server reads a table once; a job worker would read the same file again and hold its
own copy while it explains (a million rows of 50 features: 400 MB more, and as much again
while it converts). Instead the server keeps the table's float64 block in an anonymous
shared memory file (`memfd_create`, Linux) and hands its descriptor to the worker with
the job, over the pool's socket (SCM_RIGHTS): the worker maps the same pages read-only.
Nothing is named in the file system, so nothing is left behind if a process dies; the
pages are freed when the last mapping goes.

Jobs that cannot take a descriptor (a Ray cluster) and systems without `memfd_create`
rebuild the table from its source as before: the descriptor only saves memory, the
numbers are the same.
"""

from __future__ import annotations

import mmap
import os
import weakref
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from whybox.model_zoo import Dataset


@dataclass(frozen=True)
class SharedTable:
    """What a worker needs to see a shared table as the session's Dataset (its features:
    explaining needs no labels or identifiers); `key` finds the descriptor here."""

    key: tuple[Any, ...]
    shape: tuple[int, int]
    columns: tuple[str, ...]
    categories: tuple[tuple[str, tuple[str, ...]], ...]
    name: str
    sha256: str


class _Block(mmap.mmap):
    """A shared mapping that keeps its memory file's descriptor open while it lives, and
    what a worker needs to read it."""

    fd: int
    table: SharedTable


_blocks: weakref.WeakValueDictionary[tuple[Any, ...], _Block] = weakref.WeakValueDictionary()
"""The tables shared, by key, while their Datasets live (the latest of a key: two sessions
that read the same content with the same options hold the same values)."""


def available() -> bool:
    return hasattr(os, "memfd_create")


def share(data: Dataset, key: tuple[Any, ...]) -> Dataset:
    """`data` with its features moved into shared memory, found later by `key` (the data's
    content and the options it was read with); `data` itself where sharing is not
    available. The block lives as long as the returned Dataset's frame."""
    if not available() or not data.frame.shape[1] or not len(data.frame):
        return data
    shape = data.frame.shape
    fd = os.memfd_create("whybox-table", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, int(np.prod(shape)) * 8)
        block = _Block(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    block.fd = fd
    weakref.finalize(block, os.close, fd)
    values = np.ndarray(shape, dtype=np.float64, buffer=block, order="F")
    for j in range(shape[1]):  # a column at a time: no second whole copy on the way
        values[:, j] = data.frame.iloc[:, j].to_numpy(dtype=np.float64)
    values.flags.writeable = False
    frame = pd.DataFrame(values, index=data.frame.index, columns=data.frame.columns, copy=False)
    block.table = SharedTable(
        key=key,
        shape=shape,
        columns=tuple(str(c) for c in data.frame.columns),
        categories=tuple((c, tuple(names)) for c, names in data.categories.items()),
        name=data.name,
        sha256=data.sha256,
    )
    _blocks[key] = block
    return replace(data, frame=frame)


def find(key: tuple[Any, ...]) -> SharedTable | None:
    """The descriptor of the table shared under `key`, while it lives."""
    block = _blocks.get(key)
    return None if block is None else block.table


def descriptor(table: SharedTable) -> int | None:
    """A new descriptor of `table`'s memory file for a worker (the caller sends and closes
    it), or None once the table is gone."""
    block = _blocks.get(table.key)
    return None if block is None else os.dup(block.fd)


def attach(table: SharedTable, fd: int) -> Dataset:
    """The shared table behind `fd` as a read-only Dataset (the descriptor may be closed
    afterwards: the mapping stays)."""
    rows, columns = table.shape
    block = mmap.mmap(fd, rows * columns * 8, prot=mmap.PROT_READ)
    values = np.ndarray(table.shape, dtype=np.float64, buffer=block, order="F")
    frame = pd.DataFrame(values, columns=list(table.columns), copy=False)
    return Dataset(
        frame=frame,
        sha256=table.sha256,
        name=table.name,
        categories={c: list(names) for c, names in table.categories},
    )
