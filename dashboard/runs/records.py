"""What a run leaves behind: attributions.csv and the run.json that says how they were made."""

from __future__ import annotations

import json
import platform
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from whybox.dashboard.runs.outputs import sha256_files, write_attributions, write_image_attributions
from whybox.explainers import Explanation
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.data import take_rows

if TYPE_CHECKING:
    from whybox.model_zoo.image_data import ImageSet
    from whybox.trust.images import ImageTypicality, ScoredImage
    from whybox.trust.typicality import RowTypicality, Typicality

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


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


EXPLANATION_ARRAYS = ("values", "base_values", "data", "predictions", "target", "rows")


def write_explanation(explanation: Explanation, out: Path) -> dict[str, str]:
    """Write explanation.npz (every array, no pickle) so a run can be reopened and reported."""
    arrays = {name: getattr(explanation, name) for name in EXPLANATION_ARRAYS}
    if explanation.standard_errors is not None:
        arrays["standard_errors"] = explanation.standard_errors
    path = out / "explanation.npz"
    with path.open("wb") as handle:  # np.savez on a handle writes no timestamps: same bytes
        np.savez(handle, **arrays)
    return sha256_files(out, [path])


def explanation_fields(explanation: Explanation) -> dict[str, Any]:
    """The non-array fields of an Explanation, JSON-ready (run.json's `explanation`)."""
    return {
        "feature_names": explanation.feature_names,
        "output_names": explanation.output_names,
        "output_space": explanation.output_space,
        "method": explanation.method,
        "params": explanation.params,
        "seed": explanation.seed,
        "device": explanation.device,
        "seconds": explanation.seconds,
        "additive": explanation.additive,
        "additivity_gap": explanation.additivity_gap,
        "notes": explanation.notes,
        "signed": explanation.signed,
        "failures": explanation.failures,
        "dictionary": explanation.dictionary,
    }


@dataclass
class Run:
    """A finished run as saved in a directory: run.json, explanation.npz and the outputs."""

    directory: Path
    record: dict[str, Any]
    explanation: Explanation

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def images(self) -> bool:
        return self.record["model"]["modality"] == "image"


def load_run(directory: Path) -> Run:
    """Reopen a run directory written by `whybox explain` or the dashboard."""
    directory = Path(directory)
    if not directory.is_dir():
        raise WhyboxError(
            f"{directory} is not a directory; give the --out directory of `whybox explain`"
        )
    try:
        record = json.loads((directory / "run.json").read_text())
        with np.load(directory / "explanation.npz", allow_pickle=False) as arrays:
            loaded = {name: arrays[name] for name in arrays.files}
        fields = record["explanation"]
        categories = record["data"].get("categories", {})  # the data's, kept once in run.json
    except FileNotFoundError as exc:
        raise WhyboxError(
            f"{directory} is not a whybox run directory (no {Path(exc.filename).name}); "
            "give the --out directory of `whybox explain`"
        ) from exc
    except (ValueError, KeyError, OSError) as exc:
        raise WhyboxError(
            f"the run in {directory} is damaged or from another version: {exc}"
        ) from exc
    features = {k: v for k, v in categories.items() if k in fields["feature_names"]}
    explanation = Explanation(**loaded, **fields, categories=features)
    return Run(directory=directory, record=record, explanation=explanation)


def data_summary(dataset: Dataset | ImageSet, explanation: Explanation) -> dict[str, Any]:
    """The data's summary plus, for tables, each column's type and statistics (the schema)
    and the identifier of every explained row (where an id column was named), and, for
    images, the file name of every explained image."""
    summary = dataset.summary()
    if isinstance(dataset, Dataset):
        frame = dataset.frame
        stats = {"min": frame.min(), "mean": frame.mean(), "max": frame.max()}
        summary["schema"] = [
            {
                "name": str(name),
                "type": str(frame[name].dtype),
                **{key: _number(column[name]) for key, column in stats.items()},
                "missing": int(frame[name].isna().sum()),
            }
            for name in frame.columns
        ]
        if dataset.ids is not None:
            summary["explained_ids"] = [str(dataset.ids.iloc[int(r)]) for r in explanation.rows]
    else:
        summary["explained_sources"] = [dataset.sources[int(r)] for r in explanation.rows]
    return summary


def _number(value: Any) -> float | None:
    """A float for JSON; None for NaN (a column with no values)."""
    value = float(value)
    return None if np.isnan(value) else value


def background_size(explanation: Explanation, data_rows: int) -> dict[str, int] | None:
    """How many reference rows the method sampled from the data, of how many, with which
    seed; None for methods that take none, or whose baseline is a black input (the
    `baseline` parameter: black, or auto for images)."""
    size = explanation.params.get("background")
    baseline = explanation.params.get("baseline")
    if size is None or baseline == "black" or (baseline == "auto" and explanation.values.ndim > 2):
        return None
    return {"rows": min(int(size), data_rows), "of": data_rows, "seed": explanation.seed}


def run_record(
    model: Model,
    dataset: Dataset,
    explanation: Explanation,
    command: list[str],
    files: dict[str, str],
    performance: dict[str, float] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The run.json content: identity of the inputs, the method, quality numbers, versions."""
    return {
        "run_id": run_id or uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "model": model.summary(),
        "data": data_summary(dataset, explanation),
        "explainer": explanation.method,
        **explanation.record(),
        "background": background_size(explanation, len(dataset)),
        "explanation": explanation_fields(explanation),
        "performance": performance,
        "versions": library_versions(),
        "files": files,
    }


def typicality_record(
    scorer: Typicality | ImageTypicality,
    rows: Sequence[RowTypicality | ScoredImage],
    threshold: float,
) -> dict[str, Any]:
    """run.json's `typicality`: how the explained rows (or images) compare with the
    scorer's reference."""
    reference = scorer.reference
    return {
        "method": scorer.method,
        "threshold": threshold,
        "reference": {
            "name": reference.name,
            "rows": len(reference),
            "sha256": reference.sha256,
            "notes": list(reference.notes),
        },
        "rows": [
            {
                "typicality": row.typicality,
                "outside": row.typicality < threshold,
                "reasons": row.reasons,
            }
            for row in rows
        ],
    }


def save_run(
    model: Model,
    dataset: Dataset | ImageSet,
    explanation: Explanation,
    out: Path,
    command: list[str],
    run_id: str | None = None,
    typicality: dict[str, Any] | None = None,
    quality: dict[str, Any] | None = None,
    analyses: dict[str, Any] | None = None,
) -> Run:
    """Write everything a run leaves behind into `out` and return it as a Run;
    `typicality` is `typicality_record` of the explained rows, where a reference was given,
    `quality` the explanation's `Quality.record()`, where it was measured, and `analyses`
    what else was computed on the same data, by name (`rules`, `glass_box`: their
    `to_dict()`)."""
    from whybox.model_zoo.image_data import ImageSet
    from whybox.model_zoo.performance import performance

    out.mkdir(parents=True, exist_ok=True)
    rows = typicality["rows"] if typicality else None
    if isinstance(dataset, ImageSet):
        files = write_image_attributions(explanation, dataset, out, rows)
        scores = None
    else:
        files = write_attributions(explanation, out, dataset.ids, dataset.id_name, rows)
        scores = performance(model, dataset) if dataset.labels is not None else None
    files |= write_explanation(explanation, out)
    record = run_record(model, dataset, explanation, command, files, scores, run_id)
    if typicality is not None:
        record["typicality"] = typicality
    if quality is not None:
        record["quality"] = quality
    record |= analyses or {}
    if model.task == "classification":
        outputs = model.predict(take_rows(dataset.values, explanation.rows))
        record["predicted_classes"] = [model.class_names[i] for i in outputs.argmax(axis=1)]
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return Run(directory=out, record=record, explanation=explanation)
