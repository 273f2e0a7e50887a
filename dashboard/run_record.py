"""What a run leaves behind: attributions.csv and the run.json that says how they were made."""

from __future__ import annotations

import hashlib
import platform
import uuid
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from explainers import Explanation
from model_zoo import Dataset, Model

LIBRARIES = (
    "whybox",
    "numpy",
    "pandas",
    "torch",
    "captum",
    "shap",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "onnxruntime",
    "skops",
    "safetensors",
)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def safe_cell(text: str) -> str:
    """Neutralise spreadsheet formula injection in a user-provided name."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def write_attributions(explanation: Explanation, out: Path) -> dict[str, str]:
    """Write attributions.csv; return {file name: SHA-256} of what was written."""
    frame = explanation.to_frame()
    frame.columns = [safe_cell(str(c)) for c in frame.columns]
    path = out / "attributions.csv"
    frame.to_csv(path, index=False, float_format="%.10g")
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}


def run_record(
    model: Model,
    dataset: Dataset,
    explanation: Explanation,
    command: list[str],
    files: dict[str, str],
) -> dict[str, Any]:
    """The run.json content: identity of the inputs, the method, quality numbers, versions."""
    return {
        "run_id": uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "model": model.summary(),
        "data": dataset.summary(),
        "explainer": explanation.method,
        **explanation.record(),
        "versions": library_versions(),
        "files": files,
    }
