"""The explainer contract: `Param` specs, the `Explanation` result and the `Explainer` base."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.limits import Limit
from whybox.model_zoo.model import resolve_device

Progress = Callable[[int, int], None]
"""A progress callback: (units done, units in all)."""


@dataclass(frozen=True)
class Param:
    """One explainer parameter: the UI turns it into a widget, the report prints it.

    A budget (steps, samples) takes its upper bound from an operator `limit` instead of `high`.
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    limit: Limit | None = None

    @property
    def upper(self) -> float | None:
        return self.limit.value() if self.limit else self.high

    def validate(self, value: Any) -> Any:
        if value is None:
            return self.default
        try:
            value = (
                self.type(value)
                if self.type is not bool or isinstance(value, bool)
                else _as_bool(value)
            )
        except (TypeError, ValueError):
            raise WhyboxError(
                f"parameter {self.name} must be {self.type.__name__}, got {value!r}"
            ) from None
        if self.choices is not None and value not in self.choices:
            raise WhyboxError(
                f"parameter {self.name} must be one of "
                f"{', '.join(map(str, self.choices))}, got {value!r}"
            )
        if self.low is not None and value < self.low:
            raise WhyboxError(f"parameter {self.name} must be at least {self.low}, got {value}")
        if self.limit and value > (bound := self.limit.value()):
            raise self.limit.exceeded(
                f"parameter {self.name} is {value:,}", f"use {bound:,} or fewer"
            )
        if self.high is not None and value > self.high:
            raise WhyboxError(f"parameter {self.name} must be at most {self.high}, got {value}")
        return value

    def describe(self) -> dict[str, Any]:
        spec = asdict(self)
        setting = self.limit.setting if self.limit else None
        spec.update(type=self.type.__name__, high=self.upper, limit=setting)
        return spec


def _as_bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)


SEED = Param("seed", int, 0, "Random seed: the same seed gives the same values.", low=0)
OUTPUT_SPACE = Param(
    "output_space",
    str,
    "auto",
    "Explain probabilities, margins (log-odds) or raw values; auto "
    "takes the model's default (margin for classifiers that have one).",
    choices=("auto", "probability", "margin", "value"),
)
DEVICE = Param(
    "device",
    str,
    "auto",
    "Where to evaluate the model: auto picks CUDA when present.",
    choices=("auto", "cpu", "cuda"),
)
BACKGROUND = Param(
    "background",
    int,
    100,
    "Reference rows sampled from the data; attributions "
    "are measured against the model's average output on them.",
    low=1,
    high=100_000,
)


@dataclass
class Explanation:
    """Attributions and everything needed to trust and reproduce them (numpy only, picklable).

    `values` is (rows, features), or (images, C, H, W) for image models; `base_values`
    (rows,) so that each row's values summed plus its base value equal `predictions` where
    the method is additive (`additivity_gap` records the worst absolute gap). `target`
    holds the explained output column per row. `signed` says whether values may be
    negative (evidence against) or are magnitudes only.
    """

    values: np.ndarray
    base_values: np.ndarray
    data: np.ndarray
    predictions: np.ndarray
    feature_names: list[str]
    output_names: list[str]
    target: np.ndarray
    output_space: str
    method: str
    params: dict[str, Any]
    seed: int
    device: str
    seconds: float = 0.0
    rows: np.ndarray | None = None
    additive: bool = False
    additivity_gap: float | None = None
    standard_errors: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    signed: bool = True

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.arange(len(self.values))

    def subset(self, positions: np.ndarray | Sequence[int]) -> Explanation:
        """The same explanation restricted to some of its rows (positions, not row numbers)."""
        index = np.asarray(positions, dtype=np.int64)
        per_row = ("values", "base_values", "data", "predictions", "target", "rows")
        picked = {name: getattr(self, name)[index] for name in per_row}
        if self.standard_errors is not None:
            picked["standard_errors"] = self.standard_errors[index]
        return replace(self, **picked, notes=list(self.notes))

    def to_frame(self) -> pd.DataFrame:
        """One row per explained row: `row`, one column per feature, `base_value`, `prediction`."""
        frame = pd.DataFrame(self.values.reshape(len(self.values), -1), columns=self.feature_names)
        frame.insert(0, "row", self.rows)
        frame["base_value"] = self.base_values
        frame["prediction"] = self.predictions
        return frame

    def top_reasons(
        self, k: int = 4, row: int = 0, sign: int = 1
    ) -> list[tuple[str, float, float]]:
        """The `k` features that pushed row `row` most toward `sign`: (name, value, attribution)."""
        contributions = self.values[row] * sign
        order = np.argsort(-contributions, kind="stable")
        return [
            (self.feature_names[i], float(self.data[row, i]), float(self.values[row, i]))
            for i in order[:k]
            if contributions[i] > 0
        ]

    def to_shap(self):  # -> shap.Explanation
        import shap

        return shap.Explanation(
            values=self.values,
            base_values=self.base_values,
            data=self.data,
            feature_names=self.feature_names,
        )

    def record(self) -> dict[str, Any]:
        """The JSON-ready description of how the values were computed."""
        targets = sorted({int(t) for t in self.target})
        return {
            "method": self.method,
            "params": self.params,
            "seed": self.seed,
            "device": self.device,
            "output_space": self.output_space,
            "target": [self.output_names[t] for t in targets],
            "rows": len(self.values),
            "seconds": round(self.seconds, 4),
            "additive": self.additive,
            "additivity_gap": self.additivity_gap,
            "signed": self.signed,
            "max_standard_error": None
            if self.standard_errors is None
            else float(np.max(self.standard_errors)),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Support:
    """Whether an explainer can run on a model and data, and if not, why."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def within(cls, limit: Limit, amount: int, found: str, advice: str) -> Support:
        """Refused where `amount` is over the operator's `limit`."""
        return cls(False, limit.over(found, advice)) if amount > limit.value() else cls(True)


class Explainer:
    """Base of every explainer, built-in or plugin.

    Subclasses set the class attributes and implement `_explain`. `__init__` only validates
    and stores parameters, so they round-trip to widgets, cache keys and reports.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = (OUTPUT_SPACE, DEVICE, SEED)
    additive: ClassVar[bool] = False
    """True when values + base value equal the prediction (the gap is checked and recorded)."""
    sampled: ClassVar[bool] = False
    """True when values are estimates that carry standard errors."""
    signed: ClassVar[bool] = True
    """False when values are magnitudes (no evidence against), as for Grad-CAM."""
    modalities: ClassVar[tuple[str, ...]] = ("tabular",)
    """The kinds of model input the method handles: tabular rows, images or both."""

    def __init__(self, **params: Any) -> None:
        specs = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(specs))
        if unknown:
            raise WhyboxError(
                f"{self.name} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(specs)}"
            )
        self.values_ = {name: spec.validate(params.get(name)) for name, spec in specs.items()}

    def get_params(self) -> dict[str, Any]:
        return dict(self.values_)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values_", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    @classmethod
    def param_specs(cls) -> list[dict[str, Any]]:
        return [p.describe() for p in cls.params]

    def supports(self, model: Model, dataset: Dataset | None = None) -> Support:
        if model.modality not in self.modalities:
            return Support(
                False,
                f"handles {' and '.join(self.modalities)} models only; this model's inputs "
                f"are {model.modality}",
            )
        return Support(True)

    def additive_for(self, model: Model) -> bool:
        """Whether values add up to the prediction on this model (the class claim by default)."""
        return self.additive

    def explain(
        self,
        model: Model,
        dataset: Dataset,
        rows: Sequence[int] | slice | None = None,
        target: str | int | None = None,
        progress: Progress | None = None,
    ) -> Explanation:
        """Explain `rows` of `dataset` (all rows by default) for class `target`."""
        support = self.supports(model, dataset)
        if not support:
            raise WhyboxError(f"{self.name} cannot explain this model: {support.reason}")
        index = select_rows(len(dataset), rows)
        space = model.resolve_output_space(self.values_.get("output_space"))
        device = resolve_device(self.values_.get("device", "auto"))
        model.to(device)
        values = dataset.values
        # Consecutive rows (all of them, by default) are a view of the data, not a copy: a
        # million rows are explained without a second copy of them in memory. The view is
        # read-only, so an explainer (a plugin's too) cannot change the user's data through it.
        if (np.diff(index) == 1).all():
            X = values[index[0] : index[-1] + 1].view()
            X.flags.writeable = False
        else:
            X = values[index]
        target_index = model.resolve_target(target)
        fixed_targets = (
            None if target_index is None else np.full(len(X), target_index, dtype=np.int64)
        )
        run = partial(
            self._explain,
            model=model,
            dataset=dataset,
            X=X,
            output_space=space,
            device=model.device,
            progress=progress or (lambda done, total: None),
        )
        started = time.perf_counter()
        if self._predicts_itself():
            explanation = run(targets=fixed_targets)
            predictions, targets = explanation.predictions, explanation.target
        else:
            predictions = _predict_in_chunks(model, X, space)
            targets = (
                fixed_targets
                if fixed_targets is not None
                else predictions.argmax(axis=1).astype(np.int64)
            )
            explanation = run(targets=targets)
        explanation.seconds = time.perf_counter() - started
        explanation.rows = index
        explanation.predictions = predictions[np.arange(len(X)), targets]
        explanation.additive = self.additive_for(model)
        explanation.signed = self.signed
        if explanation.additive:
            total = explanation.values.reshape(len(X), -1).sum(axis=1) + explanation.base_values
            explanation.additivity_gap = float(
                np.max(np.abs(total - explanation.predictions), initial=0.0)
            )
        return explanation

    def _predicts_itself(self) -> bool:
        """True when `_explain` keeps the outputs of the forward pass its method makes
        anyway, sparing `explain` a prediction pass of its own (for a one-pass method such
        as Grad-CAM, that pass would cost as much as the method). `_explain` is then given
        `targets=None` where each row's predicted class is wanted, and returns every output
        in `predictions` (rows, outputs) and the classes it explained in `target`."""
        return False

    def _explain(
        self,
        *,
        model: Model,
        dataset: Dataset,
        X: np.ndarray,
        targets: np.ndarray,
        output_space: str,
        device: str,
        progress: Progress,
    ) -> Explanation:
        raise NotImplementedError

    def new_explanation(
        self,
        model: Model,
        X: np.ndarray,
        targets: np.ndarray,
        output_space: str,
        values: np.ndarray,
        base_values: np.ndarray,
        **extra: Any,
    ) -> Explanation:
        """The fields every explainer fills; `explain` adds timing, predictions and the gap."""
        image = model.modality == "image"
        return Explanation(
            values=np.asarray(values, dtype=np.float32 if image else np.float64),
            base_values=np.broadcast_to(
                np.asarray(base_values, dtype=np.float64), (len(X),)
            ).copy(),
            data=X,
            predictions=np.full(len(X), np.nan),
            feature_names=[]
            if image
            else list(model.feature_names or [f"x{i}" for i in range(model.n_features)]),
            output_names=model.output_names,
            target=targets,
            output_space=output_space,
            method=self.name,
            params=self.get_params(),
            seed=int(self.values_.get("seed", 0)),
            device=model.device,
            **extra,
        )


def _predict_in_chunks(model: Model, X: np.ndarray, output_space: str) -> np.ndarray:
    """Predictions in chunks of 64 MiB of input: a model's own predict (XGBoost's, ONNX
    Runtime's) may copy, or widen into activations, all the rows it is given at once."""
    step = max(1, 2**26 // max(1, X[:1].nbytes))
    return np.concatenate(
        [model.predict(X[start : start + step], output_space) for start in range(0, len(X), step)]
    )


def select_rows(n_rows: int, rows: Sequence[int] | slice | str | None) -> np.ndarray:
    """Rows as an index array; accepts None (all), a slice, indices or 'A:B' text."""
    if rows is None:
        return np.arange(n_rows)
    if isinstance(rows, str):
        rows = parse_row_range(rows)
    if isinstance(rows, slice):
        index = np.arange(n_rows)[rows]
    else:
        index = np.asarray(list(rows), dtype=np.int64)
        if ((index < 0) | (index >= n_rows)).any():
            raise WhyboxError(f"row numbers must lie in 0..{n_rows - 1}")
    if len(index) == 0:
        raise WhyboxError(f"no rows selected; the data has rows 0..{n_rows - 1}")
    return index


def parse_row_range(text: str) -> slice:
    """'A:B' (either end optional) or a single row number 'A'."""
    try:
        if ":" not in text:
            start = int(text)
            return slice(start, start + 1)
        start, stop = (int(part) if part.strip() else None for part in text.split(":", 1))
    except ValueError:
        raise WhyboxError(f"--rows must look like A:B (e.g. 0:100), got {text!r}") from None
    return slice(start, stop)
