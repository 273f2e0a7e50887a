"""Rule surrogates: planted rules come back, fidelity and its interval are what a direct
count gives, and every rule's words select exactly the held-out rows the tree puts in it."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import r2_score
from sklearn.tree import DecisionTreeClassifier

from whybox.explainers.testing import make_dataset, synthetic_frame
from whybox.model_zoo import Dataset, Model, WhyboxError, demos, load_data, load_model
from whybox.model_zoo.categories import names
from whybox.trust.rules import VERDICTS, RuleSurrogate, fit_rules

CREDIT_CODED = {column: dict(enumerate(n)) for column, n in demos.CREDIT_CATEGORIES.items()}
PLANTED_INCOME, PLANTED_AGE, PLANTED_DEBT = 50.0, 30, 2000.0


def planted_frame(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Applicants whose status is a depth-3 tree of known thresholds: bad when Income ≤ 50
    and Age < 30, or Income > 50, Home is rent and Debt > 2,000 or missing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "Income": rng.uniform(0, 100, n),
            "Age": rng.integers(18, 81, n).astype(float),
            "Debt": rng.uniform(0, 5000, n),
            "Home": rng.choice(["owner", "parents", "rent"], n, p=[0.4, 0.2, 0.4]),
        }
    )
    frame.loc[rng.random(n) < 0.05, "Debt"] = np.nan
    income, age, debt, home = (frame[c] for c in ("Income", "Age", "Debt", "Home"))
    high_debt = (debt > PLANTED_DEBT) | debt.isna()
    bad = ((income <= PLANTED_INCOME) & (age < PLANTED_AGE)) | (
        (income > PLANTED_INCOME) & (home == "rent") & high_debt
    )
    return frame, bad.to_numpy()


@cache
def planted() -> tuple[Model, Dataset, np.ndarray]:
    """An XGBoost classifier trained to reproduce the planted tree, read back through
    `load_model` from its JSON file, and its data as `load_data` reads the CSV."""
    import xgboost

    frame, bad = planted_frame()
    matrix = xgboost.DMatrix(
        frame.astype({"Home": "category"}), label=bad.astype(float), enable_categorical=True
    )
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1}
    booster = xgboost.train(params, matrix, num_boost_round=200)
    booster.set_attr(whybox_class_names=json.dumps(["good", "bad"]))
    model = load_model(bytes(booster.save_raw("json")), name="planted.json", isolated=False)
    table = frame.assign(Status=np.where(bad, "bad", "good")).to_csv(index=False).encode()
    data = load_data(table, model, label="Status", name="planted.csv")
    return model, data, bad


@cache
def credit() -> tuple[Model, Dataset]:
    model = demos.resolve_model("demo:credit-xgboost")
    return model, demos.resolve_data("demo:credit", model)


def predicting(classes: list[str], predict_fn, n_features: int = 3) -> Model:
    """A classifier known by its function of the rows, as an ONNX graph would be."""
    return Model(
        name="function",
        format="other",
        kind="other",
        task="classification",
        n_features=n_features,
        feature_names=["x", "y", "z"][:n_features],
        class_names=classes,
        output_spaces=("probability",),
        sha256="",
        native=None,
        predict_fn=predict_fn,
    )


def answers(model: Model, values: np.ndarray) -> np.ndarray:
    predicted = model.predict(values)
    return predicted.argmax(axis=1) if model.task == "classification" else predicted[:, 0]


# Reading the words as a user would ----------------------------------------------------------

NUMBER = r"-?[\d,]+(?:\.\d+)?"


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def meets(text: str, column: np.ndarray) -> np.ndarray:
    """Which rows meet one condition's words: `column` holds the feature's values (numbers,
    or category names with None where missing)."""
    missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in column])
    body, or_missing = text.removesuffix(" or missing"), text.endswith(" or missing")
    if body.endswith(" is missing"):
        return missing
    if body.endswith(" is not missing"):
        return ~missing
    if found := re.fullmatch(rf"({NUMBER}) (<|≤) .+ ≤ ({NUMBER})", body):
        low, strict, high = _number(found[1]), found[2] == "<", _number(found[3])
        x = np.where(missing, np.nan, column).astype(float)
        result = ((x > low) if strict else (x >= low)) & (x <= high)
    elif found := re.fullmatch(rf".+ (≤|≥|>|=) ({NUMBER})", body):
        x, bound = np.where(missing, np.nan, column).astype(float), _number(found[2])
        result = {"≤": x <= bound, "≥": x >= bound, ">": x > bound, "=": x == bound}[found[1]]
    else:
        phrase = re.fullmatch(r".+? is (.+)", body)[1]
        if found := re.fullmatch(r"(?:not (.+)|neither (.+) nor (.+)|none of (.+))", phrase):
            excluded = [p for p in found.groups() if p for p in p.split(", ")]
            result = np.array([v not in excluded for v in column])
        else:
            chosen = re.sub(r"^one of ", "", phrase).replace(" or ", ", ").split(", ")
            result = np.array([v in chosen for v in column])
    return (result & ~missing) | (or_missing & missing)


def rows_meeting(surrogate: RuleSurrogate, data: Dataset, rows: np.ndarray, coded=None):
    """Per rule, the `rows` of `data` its words select (category codes read as names)."""
    shown = {}
    for j, name in enumerate(data.feature_names):
        column = data.values[rows, j]
        if name in data.categories:
            column = names(data.categories[name], column)
        elif coded and name in coded:
            column = np.array([None if np.isnan(c) else coded[name][c] for c in column])
        shown[name] = column
    selected = []
    for rule in surrogate.rules:
        mask = np.ones(len(rows), dtype=bool)
        for condition in rule.conditions:
            mask &= meets(condition.text, shown[condition.feature])
        selected.append(mask)
    return np.array(selected)


def check_words_match_tree(surrogate: RuleSurrogate, model: Model, data: Dataset, coded=None):
    """Each held-out row meets exactly one rule's words, the rule the tree puts it in; each
    rule's rows, coverage and agreement (or error) are a direct count over those rows."""
    held = surrogate.held_out
    selected = rows_meeting(surrogate, data, held, coded)
    assert (selected.sum(axis=0) == 1).all(), "the rules' words must partition the rows"
    predicted = surrogate.tree.predict(surrogate.inputs(data.values[held]))
    truth = answers(model, data.values[held])
    for rule, mask in zip(surrogate.rules, selected, strict=True):
        assert rule.rows == mask.sum()
        assert rule.coverage == pytest.approx(mask.mean())
        if model.task == "classification":
            outcome = model.class_names.index(rule.outcome)
            assert (predicted[mask] == outcome).all(), rule.text
            if rule.rows:
                assert rule.agreement == pytest.approx(np.mean(truth[mask] == outcome))
        else:
            np.testing.assert_allclose(predicted[mask], rule.outcome)
            if rule.rows:
                assert rule.mean_error == pytest.approx(np.mean(np.abs(truth[mask] - rule.outcome)))
    assert sum(rule.coverage for rule in surrogate.rules) == pytest.approx(1.0)
    assert sum(rule.rows for rule in surrogate.rules) == surrogate.held_out_rows


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval by its formula."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


# Tests ---------------------------------------------------------------------------------------


def test_planted_rules_come_back_in_the_data_s_words() -> None:
    model, data, bad = planted()
    surrogate = fit_rules(model, data, max_rules=8)
    assert surrogate.fidelity > 0.99
    assert surrogate.verdict == VERDICTS["close"]
    # every rule holds rows of one planted status only, and says which
    held = surrogate.held_out
    for rule, mask in zip(surrogate.rules, rows_meeting(surrogate, data, held), strict=True):
        assert np.mean(bad[held][mask] == (rule.outcome == "bad")) > 0.95, rule.text
    conditions = [c for rule in surrogate.rules for c in rule.conditions]
    features = {c.feature for c in conditions}
    assert features == {"Income", "Age", "Debt", "Home"}
    for c in conditions:
        if c.feature == "Income":
            assert abs((c.low if c.high is None else c.high) - PLANTED_INCOME) < 1, c
        elif c.feature == "Age":  # whole years, in whole numbers
            assert c.text in ("Age ≥ 30", "Age ≤ 29"), c.text
        elif c.feature == "Debt":
            assert abs((c.low if c.high is None else c.high) - PLANTED_DEBT) < 60, c
            # a missing debt goes with a high one, as planted, and the words say so
            assert c.text.endswith(" or missing") == (c.low is not None), c.text
        else:
            assert c.text in ("Home is rent", "Home is not rent"), c.text
    bad_rules = [rule for rule in surrogate.rules if rule.outcome == "bad"]
    assert any(
        re.fullmatch(r"Debt > 2,0\d\d or missing", c.text)
        for rule in bad_rules
        for c in rule.conditions
    )
    assert "a missing value follows" in " ".join(surrogate.notes)
    check_words_match_tree(surrogate, model, data)


def test_credit_fidelity_and_interval_are_a_direct_count() -> None:
    model, data = credit()
    surrogate = fit_rules(model, data, max_rules=8, coded=CREDIT_CODED)
    held = surrogate.held_out
    fitted = np.setdiff1d(np.arange(len(data)), held)
    assert len(held) == round(0.3 * len(data)) == surrogate.held_out_rows
    assert len(fitted) == surrogate.fitted_rows
    # the tree's inputs built here from the column names alone
    values = data.values

    def inputs(rows: np.ndarray) -> np.ndarray:
        columns = []
        for column in surrogate.columns:
            feature, _, category = column.partition(" = ")
            x = values[rows, data.feature_names.index(feature)]
            if category:
                x = (x == demos.CREDIT_CATEGORIES[feature].index(category)).astype(float)
            columns.append(x)
        return np.column_stack(columns)

    truth = answers(model, values)
    tree = DecisionTreeClassifier(max_leaf_nodes=8, random_state=0)
    tree.fit(inputs(fitted), truth[fitted])
    agreeing = int(np.sum(tree.predict(inputs(held)) == truth[held]))
    assert surrogate.measure == "agreement"
    assert surrogate.fidelity == agreeing / len(held)
    np.testing.assert_allclose(surrogate.interval, wilson(agreeing, len(held)), rtol=1e-9)
    common = np.bincount(truth[fitted]).argmax()
    assert surrogate.baseline == np.mean(truth[held] == common)
    assert surrogate.baseline_outcome == model.class_names[common]
    # rules in the dictionary's category names, never codes
    texts = " ".join(rule.text for rule in surrogate.rules)
    assert re.search(r"Job is (?:not )?partime|Records is (?:no|yes)", texts), texts
    assert "Job ≤" not in texts and "Records ≥" not in texts
    assert surrogate.summary.startswith("8 rules agree with the model on")
    assert f"of {len(held):,} held-out rows" in surrogate.summary
    record = json.loads(json.dumps(surrogate.to_dict()))
    assert record["fidelity"] == surrogate.fidelity and len(record["rules"]) == 8
    assert record["rules"][0]["text"] == surrogate.rules[0].text


def test_each_rule_s_words_cover_its_rows_and_agreement_is_a_direct_count() -> None:
    model, data = credit()
    surrogate = fit_rules(model, data, max_rules=16, coded=CREDIT_CODED)
    check_words_match_tree(surrogate, model, data, CREDIT_CODED)
    for rule in surrogate.rules:  # each rule's interval is Wilson's on its own rows
        agreeing = round(rule.agreement * rule.rows)
        np.testing.assert_allclose(rule.interval, wilson(agreeing, rule.rows), rtol=1e-9)
    assert [r.rows for r in surrogate.rules] == sorted(
        (r.rows for r in surrogate.rules), reverse=True
    )


def test_curve_grows_with_the_rules_and_a_poor_likeness_says_so() -> None:
    model, data = credit()
    surrogate = fit_rules(model, data, max_rules=8, coded=CREDIT_CODED)
    assert [p.rules for p in surrogate.curve] == list(range(2, 9))
    assert surrogate.curve[-1].fidelity == surrogate.fidelity
    assert surrogate.curve[-1].fidelity > surrogate.curve[0].fidelity
    for before, point in zip(surrogate.curve, surrogate.curve[1:], strict=False):
        assert point.fidelity >= before.fidelity - 0.02  # held-out noise, no more
    for point in surrogate.curve:
        assert point.interval[0] <= point.fidelity <= point.interval[1]

    # a diagonal boundary takes many axis-aligned rules: two are a poor sketch of it
    def diagonal(X: np.ndarray, space: str) -> np.ndarray:
        above = (X[:, 0] + X[:, 1] > 1).astype(float)
        return np.column_stack([1 - above, above])

    model = predicting(["below", "above"], diagonal)
    frame = pd.DataFrame(np.random.default_rng(1).uniform(size=(3000, 3)), columns=["x", "y", "z"])
    data = make_dataset(frame)
    two = fit_rules(model, data, max_rules=2)
    assert len(two.rules) == 2 and two.fidelity < 0.8
    assert two.verdict == VERDICTS["poor"]
    assert "read them as a rough sketch, not as its logic" in two.summary
    assert two.to_dict()["verdict"] == VERDICTS["poor"]
    many = fit_rules(model, data, max_rules=40)
    assert many.fidelity > 0.95 and many.verdict == VERDICTS["close"]

    # and rules that only echo the most frequent answer say that instead: a rare class on
    # a checkerboard, which no two rules can find
    def rare(X: np.ndarray, space: str) -> np.ndarray:
        chequer = (np.floor(8 * X[:, 0]) + np.floor(8 * X[:, 1])) % 2 == 0
        found = (chequer & (X[:, 2] < 0.1)).astype(float)
        return np.column_stack([1 - found, found])

    echo = fit_rules(predicting(["common", "rare"], rare), data, max_rules=2)
    assert echo.verdict == VERDICTS["trivial"].format(outcome="common")
    assert "no better than answering common for every row" in echo.summary


def test_regression_fidelity_is_r2_with_a_bootstrap_interval(regression_mlp: Model) -> None:
    model = regression_mlp
    data = make_dataset(synthetic_frame(1500))
    surrogate = fit_rules(model, data, max_rules=8, seed=3)
    assert surrogate.measure == "r2" and surrogate.baseline is None
    held = surrogate.held_out
    truth = answers(model, data.values[held])
    predicted = surrogate.tree.predict(surrogate.inputs(data.values[held]))
    assert surrogate.fidelity == pytest.approx(r2_score(truth, predicted))
    low, high = surrogate.interval
    assert low < surrogate.fidelity < high and high - low < 0.3
    assert all(isinstance(rule.outcome, float) for rule in surrogate.rules)
    assert "R²" in surrogate.summary
    # continuous thresholds are shortened only where no row lies between
    check_words_match_tree(surrogate, model, data)


def test_same_seed_same_rules_and_bad_input_says_what_is_needed() -> None:
    model, data, _ = planted()
    first, again = (fit_rules(model, data, max_rules=6, seed=5) for _ in range(2))
    assert first.to_dict() == again.to_dict()
    assert (first.held_out == again.held_out).all()
    assert not np.array_equal(fit_rules(model, data, max_rules=6, seed=6).held_out, first.held_out)
    sampled = fit_rules(model, data, max_rules=6, max_rows=1000)
    assert sampled.fitted_rows + sampled.held_out_rows == 1000
    assert "seeded sample of 1,000 of the data's 4,000 rows" in sampled.notes[0]

    image = replace(predicting(["a", "b"], None, 4), modality="image", input_shape=(1, 2, 2))
    small = data.subset(range(50))
    cases = [
        (lambda: fit_rules(model, data, max_rules=1), "at least 2 (got 1)"),
        (lambda: fit_rules(model, data, held_out=1.0), "between 0 and 1 (got 1.0)"),
        (lambda: fit_rules(model, small), "at least 100 rows"),
        (lambda: fit_rules(model, data, max_rows=20), "max_rows is 20"),
        (lambda: fit_rules(image, data), "models of tables"),
    ]
    for call, words in cases:
        with pytest.raises(WhyboxError) as info:
            call()
        assert words in str(info.value) and "\n" not in str(info.value), str(info.value)
