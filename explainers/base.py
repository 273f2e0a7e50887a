"""The explainer contract: `Param` specs, the `Explanation` result and the `Explainer` base."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, asdict, dataclass, field, replace
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar, overload

import numpy as np
import pandas as pd

from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.data import take_rows
from whybox.model_zoo.limits import Limit

Progress = Callable[[int, int], None]
"""A progress callback: (units done, units in all)."""
T = TypeVar("T")


@dataclass(frozen=True)
class Param(Generic[T]):
    """One explainer parameter, declared as a class attribute: `steps = Param(int, 256, "...")`.

    On an instance the attribute is the validated value (an `int` here, for IDEs and type
    checkers); on the class it is this spec, which the UI turns into a widget and the report
    prints. The name is the attribute's. A budget (steps, samples) takes its upper bound
    from an operator `limit` instead of `high`.
    """

    type: type[T]
    default: T
    help: str
    _: KW_ONLY
    low: float | None = None
    high: float | None = None
    choices: tuple[T, ...] | None = None
    limit: Limit | None = None
    name: str = field(default="", init=False, compare=False)

    def __set_name__(self, owner: type, name: str) -> None:
        if self.name and self.name != name:
            raise TypeError(
                f"{owner.__name__}.{name}: this Param is already the parameter {self.name!r}; "
                f"declare a copy, dataclasses.replace({self.name.upper()})"
            )
        object.__setattr__(self, "name", name)

    @overload
    def __get__(self, instance: None, owner: type) -> Param[T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> T: ...
    def __get__(self, instance: object | None, owner: type) -> Param[T] | T:
        # An instance keeps its value in its __dict__, which Python reads before this
        # (non-data) descriptor: this runs only for the class, or before __init__.
        return self if instance is None else self.default

    @property
    def upper(self) -> float | None:
        return self.limit.value() if self.limit else self.high

    def validate(self, value: Any) -> T:
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


SEED = Param(int, 0, "Random seed: the same seed gives the same values.", low=0)
OUTPUT_SPACE = Param(
    str,
    "auto",
    "Explain probabilities, margins (log-odds) or raw values; auto "
    "takes the model's default (margin for classifiers that have one).",
    choices=("auto", "probability", "margin", "value"),
)
DEVICE = Param(
    str,
    "auto",
    "Where to evaluate the model: auto picks CUDA when present.",
    choices=("auto", "cpu", "cuda"),
)
BACKGROUND = Param(
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
    failures: list[str] = field(default_factory=list)
    """Checks of the explainer's own claims that failed on this run (shown, not hidden)."""
    categories: dict[str, list[str]] = field(default_factory=dict)
    """The data's categorical features: category names in code order, so that `data`'s codes
    are shown by name (`model_zoo.categories.names`)."""
    dictionary: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The user's data dictionary for the features, for display only: per feature a label,
    unit, description and names of coded values (`dashboard.reports.dictionary`)."""

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
        return replace(self, **picked, notes=list(self.notes), failures=list(self.failures))

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
            "failures": self.failures,
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

    A subclass sets the class attributes below, declares its parameters as `Param` class
    attributes and implements `_explain`; `explain` is the one public entry, and no
    subclass overrides it. `__init__` only validates and stores parameters, so they
    round-trip to widgets, cache keys and reports.
    """

    name: ClassVar[str] = ""
    """The entry-point name, kebab-case: `whybox explain --method NAME`."""
    display_name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    """Every declared `Param`, the base's first (computed from the class attributes)."""

    output_space = OUTPUT_SPACE
    device = DEVICE
    seed = SEED

    additive: ClassVar[bool] = False
    """True when values + base value equal the prediction: `explain` measures the gap, and
    one over `additivity_tolerance` is a failed check recorded in the explanation."""
    gap_advice: ClassVar[str] = ""
    """For a method that is additive only up to an approximation (a quadrature, say): a gap
    over the tolerance is then a note ending with this advice, not a failure."""
    sampled: ClassVar[bool] = False
    """True when values are estimates that carry standard errors."""
    signed: ClassVar[bool] = True
    """False when values are magnitudes (no evidence against), as for Grad-CAM."""
    modalities: ClassVar[tuple[str, ...]] = ("tabular",)
    """The kinds of model input the method handles: tabular rows, images or both."""
    one_pass: ClassVar[bool] = False
    """True when the method's own forward pass over the rows gives the predictions, so that
    `explain` makes none (for Grad-CAM or Saliency that pass would cost as much as the
    method). `_explain` is then given `targets=None` where each row's predicted class is
    wanted, and returns every output in `predictions` (rows, outputs) and the explained
    class of each row in `target`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "explain" in cls.__dict__:
            raise TypeError(
                f"{cls.__module__}.{cls.__qualname__} overrides explain(); implement "
                "_explain() (and _notes() or _delegate() where needed) instead"
            )
        cls.params = _declared_params(cls)

    def __init__(self, **params: Any) -> None:
        specs = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(specs))
        if unknown:
            raise WhyboxError(
                f"{self.name} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(specs)}"
            )
        for name, spec in specs.items():
            setattr(self, name, spec.validate(params.get(name)))

    def get_params(self) -> dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in self.params}

    @classmethod
    def param_specs(cls) -> list[dict[str, Any]]:
        return [p.describe() for p in cls.params]

    def supports(self, model: Model, dataset: Dataset | None = None) -> Support:
        """Whether this explainer can run on `model` (and `dataset`), and if not, why.

        Called for every explainer on each click in the dashboard: answer from the model's
        metadata, without running it."""
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
        target: str | int | np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> Explanation:
        """Explain `rows` of `dataset` (all rows by default) for class `target`: a class name
        or number, an array of one output number per row, or None for each row's predicted
        class."""
        delegated = self._delegate(model, dataset)
        if delegated is not None:
            chosen, reason = delegated
            explanation = chosen.explain(model, dataset, rows, target, progress)
            explanation.params = {"chosen_by": self.name, **explanation.params}
            explanation.notes.insert(0, f"{self.name} chose {chosen.name}: {reason}")
            return explanation
        support = self.supports(model, dataset)
        if not support:
            raise WhyboxError(f"{self.name} cannot explain this model: {support.reason}")
        index = select_rows(len(dataset), rows)
        space = model.resolve_output_space(self.output_space)
        model.to(self.device)
        X = take_rows(dataset.values, index)
        fixed_targets = _fixed_targets(model, target, len(X))
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
        if self.one_pass:
            explanation = self._checked(run(targets=fixed_targets), model, X, space, fixed_targets)
            predictions, targets = explanation.predictions, explanation.target
        else:
            predictions = model.predict(X, space)
            targets = (
                fixed_targets
                if fixed_targets is not None
                else predictions.argmax(axis=1).astype(np.int64)
            )
            explanation = self._checked(run(targets=targets), model, X, space, targets)
        explanation.seconds = time.perf_counter() - started
        explanation.rows = index
        if not model.feature_names and model.modality == "tabular":
            # A model that names no features (ONNX, XGBoost without names) takes the
            # columns by position: the data file's header names them.
            explanation.feature_names = list(dataset.feature_names)
        explanation.predictions = predictions[np.arange(len(X)), targets]
        explanation.additive = self.additive_for(model)
        explanation.signed = self.signed
        explanation.categories = {
            name: list(dataset.categories[name])
            for name in explanation.feature_names
            if name in getattr(dataset, "categories", {})
        }
        gap, spread = additivity_gap(explanation), output_spread(explanation)
        if explanation.additive:
            explanation.additivity_gap = gap
            if gap > additivity_tolerance(spread) and not self.gap_advice:
                explanation.failures.append(
                    f"{self.name} declares additive values, but they miss prediction minus "
                    f"base value by up to {gap:.3g} (the tolerance is "
                    f"{additivity_tolerance(spread):.3g}): treat them as approximate"
                )
        explanation.notes += self._notes(gap, spread)
        return explanation

    def _explain(
        self,
        *,
        model: Model,
        dataset: Dataset,
        X: np.ndarray,
        targets: np.ndarray | None,
        output_space: str,
        device: str,
        progress: Progress,
    ) -> Explanation:
        """The method itself; build the result with `new_explanation`.

        model: the model, already on `device`; `model.predict(X, output_space)` gives
            (rows, outputs) predictions and `model.torch_module(output_space)` the network,
            or None where there is no differentiable one.
        dataset: all of the user's data, for a background (`dataset.background(n, seed)`).
        X: the rows to explain, (rows, features) or (images, C, H, W); read-only.
        targets: the output to explain per row, (rows,) int64; None only for a `one_pass`
            method asked for each row's predicted class.
        output_space: 'probability', 'margin' or 'value', already resolved from `auto`.
        device: 'cpu' or 'cuda'.
        progress: call progress(done, total) as rows are done; the dashboard shows it.

        Random draws come from `explainers.seeding` generators keyed by `self.seed` and the
        row, never from numpy's or torch's global state (other sessions share it).
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement _explain")

    def _delegate(self, model: Model, dataset: Dataset) -> tuple[Explainer, str] | None:
        """Another explainer to run instead, with why in words, or None to run `_explain`
        (`auto` picks the best method this way)."""
        return None

    def _notes(self, gap: float, spread: float) -> list[str]:
        """Notes for the report, given the largest additivity gap over the rows and the
        largest |prediction - base value|. By default a method with `gap_advice` says when
        its gap is over the tolerance."""
        if self.additive and self.gap_advice and gap > additivity_tolerance(spread):
            return [
                f"{self.display_name} values miss prediction minus base value by up to "
                f"{gap:.3g} ({gap / max(spread, 1e-12):.1%} of the output spread); "
                + self.gap_advice
            ]
        return []

    def _checked(
        self,
        explanation: Any,
        model: Model,
        X: np.ndarray,
        output_space: str,
        targets: np.ndarray | None = None,
    ) -> Explanation:
        """What `_explain` returned, checked: the type, shapes, finite values and the name.

        A plugin's mistake becomes one line naming the plugin and what was expected,
        instead of a traceback from whatever reads the result later.
        """
        where = f"explainer {self.name!r} ({type(self).__module__}.{type(self).__qualname__})"

        def fail(problem: str) -> None:
            raise WhyboxError(f"{where} {problem}")

        if not isinstance(explanation, Explanation):
            fail(f"returned {type(explanation).__name__}, not an Explanation (use new_explanation)")
        rows = len(X)
        expected = {
            "values": (rows, *X.shape[1:]),
            "base_values": (rows,),
            "target": (rows,),
        }
        if self.one_pass:
            expected["predictions"] = (rows, model.n_outputs)
        for field_name, shape in expected.items():
            found = np.shape(getattr(explanation, field_name))
            # A regressor with several outputs predicts more columns than `n_outputs`.
            wide = field_name == "predictions" and len(found) == 2 and found[1] >= shape[1]
            if found != shape and not (wide and found[0] == rows):
                fail(f"returned {field_name} of shape {found}; expected {shape}")
        for field_name in ("values", "base_values"):
            array = np.asarray(getattr(explanation, field_name))
            if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
                fail(f"returned {field_name} that are not all finite numbers")
        if targets is not None and not np.array_equal(explanation.target, targets):
            fail("changed the targets it was given")
        if self.one_pass:
            outputs = np.shape(explanation.predictions)[1]
            target = np.asarray(explanation.target)
            if (
                not np.issubdtype(target.dtype, np.integer)
                or not ((target >= 0) & (target < outputs)).all()
            ):
                fail(f"returned targets that are not output numbers 0..{outputs - 1}")
        if explanation.method != self.name:
            fail(f"named its result {explanation.method!r}; expected {self.name!r}")
        if explanation.output_space != output_space:
            fail(f"returned output space {explanation.output_space!r}; expected {output_space!r}")
        return explanation

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
            seed=int(self.seed),
            device=model.device,
            **extra,
        )


def _fixed_targets(
    model: Model, target: str | int | np.ndarray | None, rows: int
) -> np.ndarray | None:
    """The output to explain per row, or None for each row's predicted class."""
    if isinstance(target, np.ndarray):
        if (
            target.ndim != 1
            or not np.issubdtype(target.dtype, np.integer)
            or len(target) != rows
            or ((target < 0) | (target >= model.n_outputs)).any()
        ):
            raise WhyboxError(
                f"targets must be {rows} output numbers in 0..{model.n_outputs - 1}, one per "
                f"row; got {target.dtype} of shape {target.shape}"
            )
        return target.astype(np.int64)
    index = model.resolve_target(target)
    return None if index is None else np.full(rows, index, dtype=np.int64)


def _declared_params(cls: type) -> tuple[Param, ...]:
    """The `Param` class attributes of `cls` and its bases, the base's first; a subclass
    redeclares one to change it, or sets it to None to drop it."""
    declared: dict[str, Param] = {}
    for klass in reversed(cls.__mro__):
        for attribute, value in vars(klass).items():
            if isinstance(value, Param):
                declared[attribute] = value
            elif value is None and attribute in declared:
                del declared[attribute]
    return tuple(declared.values())


Explainer.params = _declared_params(Explainer)

ADDITIVITY_TOLERANCE = 0.01
"""An additive method may miss prediction minus base value by this share of the output
spread (float32 networks, quadratures) before the miss counts."""
ADDITIVITY_SLACK = 1e-4
"""...plus this much in absolute terms, for outputs that barely move."""


def additivity_tolerance(spread: float) -> float:
    """The largest gap that still counts as additive, for a largest |prediction - base|."""
    return ADDITIVITY_TOLERANCE * spread + ADDITIVITY_SLACK


def additivity_gap(explanation: Explanation) -> float:
    """The largest |sum of a row's values + its base value - its prediction| over the rows."""
    totals = explanation.values.reshape(len(explanation.values), -1).sum(axis=1)
    gaps = np.abs(totals + explanation.base_values - explanation.predictions)
    return float(np.max(gaps, initial=0.0))


def output_spread(explanation: Explanation) -> float:
    """The largest |prediction - base value| over the rows: the scale a gap is judged by."""
    spread = np.abs(explanation.predictions - explanation.base_values)
    return float(np.max(spread, initial=0.0))


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
