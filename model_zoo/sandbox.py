"""Loading a model file first in a child process, under the operator's limits on time
(LOAD_SECONDS) and memory (LOAD_MEMORY_MB), so that a file that hangs a parser, exhausts
memory or crashes a native library costs only that child; the server loads the file itself
only once the child did.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.limits import LOAD_MEMORY_MB, LOAD_SECONDS
from whybox.model_zoo.model_file import ModelFile, damaged

# The child reads the file on stdin; argv[1] is the limit on its address space, argv[2] the
# parent's sys.path as JSON, so that the child imports the same code. A child that runs out of
# memory says so with OUT_OF_MEMORY on stderr (native libraries print their own words for it,
# matched by MEMORY_WORDS), a refused file with WHYBOX_ERROR and the message.
OUT_OF_MEMORY = "whybox-out-of-memory"
MEMORY_WORDS = "MemoryError|bad_alloc|allocat|out of memory"
WHYBOX_ERROR = "whybox-error: "
CHILD_PRELUDE = rf"""
import json, re, resource, sys

MEMORY_WORDS, OUT_OF_MEMORY, WHYBOX_ERROR = {MEMORY_WORDS!r}, {OUT_OF_MEMORY!r}, {WHYBOX_ERROR!r}

limit, sys.path[:] = int(sys.argv[1]), json.loads(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def out_of_memory(exc):
    while exc is not None:
        text = str(exc)
        if isinstance(exc, MemoryError) or re.search(MEMORY_WORDS, text):
            return True
        exc = exc.__context__
    return False


def report(kind, exc, traceback):
    if out_of_memory(exc):
        sys.stderr.write(OUT_OF_MEMORY + "\n")
    sys.__excepthook__(kind, exc, traceback)


sys.excepthook = report
"""
LOAD_CHECK = (
    CHILD_PRELUDE
    + r"""
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.loaders import load_model

try:
    load_model(sys.stdin.buffer.read(), name=sys.argv[3], trusted=False, isolated=False)
except WhyboxError as exc:
    if out_of_memory(exc):
        raise
    sys.exit(WHYBOX_ERROR + str(exc))
"""
)
# XGBoost and LightGBM end the whole process (SIGSEGV/SIGABRT) on some malformed files: a
# truncated upload, a tree missing a field or pointing past its nodes, and LightGBM's reader
# can overrun its buffer without crashing. So their child (argv[3]: the library) parses and
# tries the model with the library alone and writes it back in the library's own format;
# only that copy is parsed here.
NATIVE_CHECKED = ("xgboost-json", "xgboost-ubj", "lightgbm-text")
NATIVE_CHECK = (
    CHILD_PRELUDE
    + r"""
# Optional integrations both libraries probe for at import; blocking them makes the child
# start in about half a second instead of two.
blocked = ["sklearn", "pandas", "pyarrow", "polars", "dask", "datatable", "cudf", "cupy"]
sys.modules.update(dict.fromkeys(blocked))

import numpy

library, raw = sys.argv[3], sys.stdin.buffer.read()
if library == "xgboost":
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    width = booster.num_features()
else:
    import lightgbm

    # The training-parameters block is not needed to predict, and LightGBM's reader of it
    # overruns its buffer on a malformed line, so it is dropped before parsing.
    head, found, rest = raw.decode("utf-8").partition("\nparameters:\n")
    text = head + "\n" + rest.partition("end of parameters\n")[2] if found else head
    booster = lightgbm.Booster(model_str=text)
    width = booster.num_feature()
normal = numpy.random.default_rng(0).normal(size=(16, width))
edges = [numpy.zeros((1, width)), numpy.full((1, width), numpy.nan)]
rows = numpy.vstack([normal, 1e30 * normal, -1e30 * normal, *edges])
if library == "xgboost":
    booster.inplace_predict(rows, predict_type="margin")
    sys.stdout.buffer.write(booster.save_raw("ubj"))
else:
    booster.predict(rows, raw_score=True)
    sys.stdout.buffer.write(booster.model_to_string(num_iteration=-1).encode("utf-8"))
"""
)
CHILD_ENV = {  # a child on the CPU, few threads and malloc arenas: its address space stays small
    "OMP_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "CUDA_VISIBLE_DEVICES": "",
}


def in_child(script: str, argument: str, file: ModelFile, key: str) -> bytes:
    """`script` run on the file in a child process under the load limits: its stdout.

    Any failure there, a hang, exhausted memory or a crash included, is a one-line error.
    """
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-I",  # no environment or current directory on its path: the parent's instead
                "-c",
                script,
                str(LOAD_MEMORY_MB.bytes()),
                json.dumps(sys.path),
                argument,
            ],
            input=file.raw,
            capture_output=True,
            timeout=LOAD_SECONDS.value(),
            env={**os.environ, **CHILD_ENV},
        )
    except subprocess.TimeoutExpired:
        raise WhyboxError(
            f"loading {file.name!r} was stopped after {LOAD_SECONDS.shown()}, the limit set by "
            f"{LOAD_SECONDS.setting}; a file built to hang its parser looks like this, so the "
            "operator should raise the limit only for a model known to be slow to load"
        ) from None
    stderr = result.stderr.decode("utf-8", errors="replace")
    if result.returncode == 0:
        return result.stdout
    refused = [line for line in stderr.splitlines() if line.startswith(WHYBOX_ERROR)]
    if refused:
        raise WhyboxError(refused[-1].removeprefix(WHYBOX_ERROR))
    if OUT_OF_MEMORY in stderr or re.search(MEMORY_WORDS, stderr):
        raise WhyboxError(
            f"loading {file.name!r} needed more memory than the limit of "
            f"{LOAD_MEMORY_MB.shown()} set by {LOAD_MEMORY_MB.setting}; a file built to "
            "exhaust memory looks like this, so raise the limit only for a model known to be big"
        )
    if result.returncode < 0:
        crash = signal.Signals(-result.returncode).name
        reason = f"it is malformed (truncated?) and crashed its parser with {crash}"
    else:
        reason = _child_error(stderr) or "its loader failed"
    raise damaged(file, key, ValueError(reason))


def _child_error(stderr: str) -> str | None:
    """The message of a failed child: LightGBM's [Fatal] line, else the Python exception's."""
    lines = stderr.strip().splitlines()
    for line in lines:
        if "[Fatal]" in line:
            return line.split("[Fatal]", 1)[1].strip()
    for line in lines:
        found = re.match(r"[\w.]*(?:Error|Exception): (.*)", line)
        if found:
            return found.group(1)
    return lines[-1] if lines else None
