"""The explainer contract as a plugin author meets it: typed parameters, the one entry,
the run-time checks of what `_explain` returns, and `check_explainer`'s own failures."""

import subprocess
import sys
import textwrap
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from whybox.explainers import registry, testing
from whybox.explainers.base import BACKGROUND, Explainer, Param
from whybox.explainers.testing import (
    ContractViolation,
    check_explainer,
    fixture,
    make_dataset,
    synthetic_frame,
)
from whybox.model_zoo import WhyboxError

DATA = make_dataset(synthetic_frame(50))


class Difference(Explainer):
    """Each feature's value times `scale`, against a base value of prediction minus their sum:
    additive by construction, whatever the model."""

    name = "difference"
    display_name = "Difference"
    summary = "A test explainer."
    scale = Param(float, 1.0, "Multiplies the values.", low=0.0)
    additive = True

    def _explain(self, *, model, X, targets, output_space, **_: Any):
        predictions = model.predict(X, output_space)[np.arange(len(X)), targets]
        values = self.scale * X
        return self.new_explanation(
            model, X, targets, output_space, values, predictions - values.sum(axis=1)
        )


def test_parameters_are_typed_attributes_declared_once() -> None:
    explainer = Difference(scale="2.5", seed=3)
    assert explainer.scale == 2.5 and isinstance(explainer.scale, float) and explainer.seed == 3
    assert isinstance(Difference.scale, Param) and Difference.scale.name == "scale"
    assert [p.name for p in Difference.params] == ["output_space", "device", "seed", "scale"]
    assert Difference().get_params()["scale"] == 1.0
    with pytest.raises(WhyboxError, match="at least 0.0"):
        Difference(scale=-1)
    with pytest.raises(WhyboxError, match="no parameter"):
        Difference(steps=3)


def test_a_subclass_redeclares_or_drops_an_inherited_parameter() -> None:
    class Narrow(Difference):
        name = "narrow"
        scale = Param(float, 0.5, "Half as much.", high=1.0)
        device = None

    assert [p.name for p in Narrow.params] == ["output_space", "seed", "scale"]
    assert Narrow().scale == 0.5 and Difference().scale == 1.0


def test_one_param_under_two_names_is_refused() -> None:
    # Python 3.11 wraps an error of __set_name__ in a RuntimeError; 3.12 raises it as is.
    with pytest.raises((TypeError, RuntimeError)) as caught:

        class Twice(Explainer):
            background = BACKGROUND
            reference = BACKGROUND

    error = caught.value.__cause__ or caught.value
    assert "Twice.reference: this Param is already the parameter 'background'" in str(error)

    class Copied(Explainer):  # a copy may take another name
        background = BACKGROUND
        reference = replace(BACKGROUND, help="Another.")

    assert [p.name for p in Copied.params][-2:] == ["background", "reference"]


def test_explain_is_the_only_entry() -> None:
    with pytest.raises(TypeError, match=r"overrides explain\(\); implement _explain"):

        class Sneaky(Difference):
            def explain(self, *args, **kwargs):
                return super().explain(*args, **kwargs)


class Broken(Difference):
    """`Difference` with one mistake, chosen by `mistake`."""

    name = "broken"
    mistake = Param(
        str, "shape", "What to get wrong.", choices=("shape", "nan", "name", "type", "base")
    )

    def _explain(self, **kwargs: Any):
        explanation = super()._explain(**kwargs)
        if self.mistake == "shape":
            explanation.values = explanation.values[:, :2]
        elif self.mistake == "nan":
            explanation.values[0, 0] = np.nan
        elif self.mistake == "name":
            explanation.method = "something-else"
        elif self.mistake == "base":
            explanation.base_values = explanation.base_values[:1]
        else:
            return explanation.to_frame()
        return explanation


@pytest.mark.parametrize(
    ("mistake", "says"),
    [
        ("shape", r"returned values of shape \(3, 2\); expected \(3, 5\)"),
        ("base", r"returned base_values of shape \(1,\); expected \(3,\)"),
        ("nan", "returned values that are not all finite numbers"),
        ("name", "named its result 'something-else'; expected 'broken'"),
        ("type", "returned DataFrame, not an Explanation"),
    ],
)
def test_what_explain_returns_is_checked_in_one_line(mistake: str, says: str) -> None:
    with pytest.raises(WhyboxError, match=says) as caught:
        Broken(mistake=mistake).explain(fixture("binary-mlp"), DATA, rows=[0, 1, 2])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"explainer 'broken' ({__name__}.Broken)")


class Boasting(Difference):
    """Claims additivity and misses by the values' own sum."""

    name = "boasting"

    def _explain(self, **kwargs: Any):
        explanation = super()._explain(**kwargs)
        explanation.base_values = explanation.base_values + 1.0
        return explanation


def test_a_false_additivity_claim_is_a_recorded_failure() -> None:
    honest = Difference().explain(fixture("binary-mlp"), DATA, rows=range(5))
    assert honest.failures == [] and honest.additivity_gap < 1e-9
    boasting = Boasting().explain(fixture("binary-mlp"), DATA, rows=range(5))
    assert boasting.additivity_gap == pytest.approx(1.0)
    assert len(boasting.failures) == 1
    assert "boasting declares additive values, but they miss" in boasting.failures[0]
    assert boasting.record()["failures"] == boasting.failures
    assert boasting.subset([0]).failures == boasting.failures
    with pytest.raises(ContractViolation, match="boasting declares additive values"):
        check_explainer(Boasting)


class OnePass(Difference):
    """Keeps the predictions of its own pass: `explain` must not make another."""

    name = "one-pass"
    one_pass = True

    def _explain(self, *, model, X, targets, output_space, **_: Any):
        outputs = model.predict(X, output_space)
        if targets is None:
            targets = outputs.argmax(axis=1)
        explanation = self.new_explanation(
            model, X, targets, output_space, np.zeros(X.shape), outputs[np.arange(len(X)), targets]
        )
        explanation.predictions = outputs
        return explanation


def test_a_one_pass_method_gives_the_predictions(monkeypatch) -> None:
    model = fixture("multiclass-mlp")
    expected = model.predict(DATA.values[:4], "probability")
    calls = []
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda *a, **k: calls.append(1) or predict(*a, **k))
    explanation = OnePass(output_space="probability").explain(model, DATA, rows=range(4))
    assert len(calls) == 1  # its own pass, none by `explain`
    assert np.array_equal(explanation.target, expected.argmax(axis=1))
    assert np.allclose(explanation.predictions, expected.max(axis=1))
    assert explanation.additivity_gap < 1e-12
    fixed = OnePass(output_space="probability").explain(model, DATA, rows=range(4), target=2)
    assert (fixed.target == 2).all() and np.allclose(fixed.predictions, expected[:, 2])


def test_delegating_records_the_choice() -> None:
    class Chooser(Explainer):
        name = "chooser"

        def _delegate(self, model, dataset):
            return Difference(scale=3.0, seed=self.seed), "it is the only one"

    explanation = Chooser(seed=4).explain(fixture("binary-mlp"), DATA, rows=[0])
    assert explanation.method == "difference" and explanation.params["chosen_by"] == "chooser"
    assert explanation.params["scale"] == 3.0 and explanation.seed == 4
    assert explanation.notes[0] == "chooser chose difference: it is the only one"


def test_check_explainer_skips_other_modalities_before_building_them(monkeypatch) -> None:
    def unbuildable():
        raise RuntimeError("built a fixture of a modality the explainer does not handle")

    monkeypatch.setitem(testing.FIXTURES, "patch-cnn", testing.Fixture("image", unbuildable))
    assert check_explainer(Difference) == [
        "binary-mlp",
        "multiclass-mlp",
        "regression-mlp",
        "binary-xgboost",
    ]


def test_check_explainer_fails_under_python_O() -> None:
    """Real exceptions, not `assert` (which -O strips), with the expected value."""
    script = textwrap.dedent(
        """
        import numpy as np
        from whybox.explainers.base import Explainer
        from whybox.explainers.testing import ContractViolation, check_explainer

        class Drifting(Explainer):
            name = "drifting"
            display_name = "Drifting"
            summary = "Different values on every call."
            calls = 0

            def _explain(self, *, model, X, targets, output_space, **_):
                Drifting.calls += 1
                values = np.full(X.shape, float(Drifting.calls))
                return self.new_explanation(model, X, targets, output_space, values, 0.0)

        try:
            check_explainer(Drifting)
        except ContractViolation as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "same seed, new run: values differ by up to 1; expected at most 1e-09" in result.stdout


def test_a_model_without_feature_names_takes_the_datas_header() -> None:
    import xgboost

    from whybox.model_zoo import load_data, load_model

    X = synthetic_frame(100).to_numpy()
    booster = xgboost.train(
        {"max_depth": 2, "nthread": 1}, xgboost.DMatrix(X, label=X[:, 0] > 0), num_boost_round=3
    )
    model = load_model(bytes(booster.save_raw("json")), name="unnamed.json", isolated=False)
    assert model.feature_names is None
    header = ["alpha", "beta", "gamma", "delta", "epsilon"]
    csv = ",".join(header) + "\n" + "\n".join(",".join(map(str, row)) for row in X[:5])
    data = load_data(csv.encode(), model, name="data.csv")
    explanation = registry.get("tree-shap")().explain(model, data)
    assert explanation.feature_names == header
    assert list(explanation.to_frame().columns[1:6]) == header
