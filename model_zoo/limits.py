"""Limits on what one upload or one explanation may ask of the server, each raised by an
operator setting (an environment variable), never by the uploader.

A message about a limit names the limit and its setting: `LIMIT.exceeded(found, advice)`.
`whybox limits` prints them all with their current values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from whybox.model_zoo.errors import WhyboxError


@dataclass(frozen=True)
class Limit:
    setting: str  # the environment variable that sets it
    default: int
    meaning: str  # what is counted, for `whybox limits` and the README
    unit: str = ""  # shown after the number: " MB", " s"

    def value(self) -> int:
        raw = os.environ.get(self.setting, "").strip().replace("_", "")
        if not raw:
            return self.default
        if not raw.isdigit() or int(raw) < 1:
            raise WhyboxError(
                f"the setting {self.setting} must be a whole number of at least 1, got "
                f"{os.environ[self.setting]!r}; fix it or unset it (default {self.default:,})"
            )
        return int(raw)

    def bytes(self) -> int:
        """The value of a limit counted in MB, in bytes."""
        return self.value() * 2**20

    def shown(self) -> str:
        return f"{self.value():,}{self.unit}"

    def over(self, found: str, advice: str) -> str:
        """`found` ("the file has 12,000 columns") is over this limit, and what to do."""
        return f"{found}, more than the limit of {self.shown()} set by {self.setting}; {advice}"

    def exceeded(self, found: str, advice: str) -> WhyboxError:
        return WhyboxError(self.over(found, advice))


UPLOAD_MB = Limit("WHYBOX_MAX_UPLOAD_MB", 200, "size of one model, data or image file", " MB")
ROWS = Limit("WHYBOX_MAX_ROWS", 1_000_000, "rows of one data file")
COLUMNS = Limit("WHYBOX_MAX_COLUMNS", 10_000, "columns of a data file, and features of a model")
IMAGES = Limit("WHYBOX_MAX_IMAGES", 10_000, "images in one zip, folder or array")
PIXELS = Limit("WHYBOX_MAX_PIXELS", 40_000_000, "pixels (width x height) of one image")
TOTAL_PIXELS = Limit("WHYBOX_MAX_TOTAL_PIXELS", 2_000_000_000, "pixels of all images together")
UNPACKED_MB = Limit(
    "WHYBOX_MAX_UNPACKED_MB",
    2048,
    "uncompressed size of a zip, skops or Excel archive (as declared), or of a compressed table",
    " MB",
)
IMAGE_MEMORY_MB = Limit(
    "WHYBOX_MAX_IMAGE_MEMORY_MB", 4096, "memory of the images resized for the model", " MB"
)
COALITIONS = Limit(
    "WHYBOX_MAX_COALITIONS",
    2**24,
    "coalitions per row, each costing one model row per background row: "
    "exact-shapley (2^features), permutation-shap and kernel-shap",
)
STEPS = Limit("WHYBOX_MAX_STEPS", 10_000, "path steps of integrated-gradients")
SAMPLES = Limit(
    "WHYBOX_MAX_SAMPLES",
    100_000,
    "random samples per row or image (gradient-shap, lime, smoothgrad, partition-shap)",
)
LOAD_SECONDS = Limit(
    "WHYBOX_LOAD_TIMEOUT", 120, "time to load and check an uploaded model, in a child", " s"
)
LOAD_MEMORY_MB = Limit(
    "WHYBOX_LOAD_MEMORY_MB", 4096, "memory (address space) of that child process", " MB"
)


def available_cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's share, not the
    machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def workers_for(threads: int) -> int:
    """As many workers as budgets of `threads` fit in the cores: WHYBOX_WORKERS's default."""
    return max(1, available_cores() // threads)


# The dashboard's explanations run in worker processes, each held to a thread budget: torch's
# and OpenMP's threads spin while they wait, so two jobs that each take every core run many
# times slower together than one after the other. By default a job takes a quarter of the
# cores (at least one) and there are as many workers as budgets fit in the cores.
JOB_THREADS = Limit(
    "WHYBOX_JOB_THREADS",
    max(1, available_cores() // 4),
    "threads of one dashboard explanation (torch, BLAS and OpenMP in its worker)",
)
WORKERS = Limit(
    "WHYBOX_WORKERS",
    workers_for(JOB_THREADS.default),
    "dashboard explanations computed at once, each in a worker process "
    "(one more worker stands by for one-row explanations); "
    "unset, the cores divided by WHYBOX_JOB_THREADS",
)
JOB_SECONDS = Limit(
    "WHYBOX_JOB_TIMEOUT", 3600, "time one dashboard explanation may run in its worker", " s"
)

ALL = (
    UPLOAD_MB,
    ROWS,
    COLUMNS,
    IMAGES,
    PIXELS,
    TOTAL_PIXELS,
    UNPACKED_MB,
    IMAGE_MEMORY_MB,
    COALITIONS,
    STEPS,
    SAMPLES,
    LOAD_SECONDS,
    LOAD_MEMORY_MB,
    WORKERS,
    JOB_THREADS,
    JOB_SECONDS,
)


def read_source(
    source: bytes | str | Path, name: str | None, what: str, unnamed: str, limited: bool = True
) -> tuple[bytes, str]:
    """A file's bytes and name (`unnamed` for bytes without one), from a path or bytes,
    refused over the upload limit before it is read (command-line files included);
    `limited=False` for the operator's own files (the dashboard's server data folder)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise WhyboxError(f"{what} file not found: {path}")
        size, name = path.stat().st_size, name or path.name
    else:
        size, name = len(source), name or unnamed
    if limited and size > UPLOAD_MB.bytes():
        raise UPLOAD_MB.exceeded(
            f"the {what} file {name!r} is {size / 2**20:,.1f} MB", "use a smaller file"
        )
    return (path.read_bytes() if isinstance(source, (str, Path)) else bytes(source)), name
