"""Recourse: models built so that the easiest way to the outcome breaks a rule, and the
search must keep to the rules anyway (or say it found none, and how near it came); what is
shown is valid, typical of the data and reproducible; the credit demo's declined rows."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pandas as pd
import pytest

from whybox.model_zoo import Dataset, Model, WhyboxError, demos
from whybox.trust.constraints import parse_constraints
from whybox.trust.recourse import RecourseSearch, find_recourse
from whybox.trust.typicality import Typicality

HOME = ["owner", "parents", "rent"]
FEATURES = ["Age", "Debt", "Income", "Amount", "Price", "Home"]
CLOSEST = re.compile(
    r"none found within these constraints; the closest reaches (\d\.\d\d) of the 0\.5 threshold"
)


@pytest.fixture(scope="module")
def data() -> Dataset:
    """Applicants: Price follows Amount closely (a loan pays for a good), so a large loan
    for a cheap good is a combination no one has."""
    rng = np.random.default_rng(0)
    n = 800
    amount = rng.integers(2, 80, n) * 50.0
    frame = pd.DataFrame(
        {
            "Age": rng.integers(20, 70, n).astype(float),
            "Debt": np.where(rng.random(n) < 0.4, 0.0, rng.integers(1, 100, n) * 100.0),
            "Income": rng.integers(50, 300, n).astype(float),
            "Amount": amount,
            "Price": np.round(amount * 1.2 + rng.normal(0, 50, n)),
            "Home": rng.integers(0, 3, n).astype(float),
        }
    )
    return Dataset(frame=frame, sha256="", categories={"Home": HOME})


def toy(probability, name: str = "toy") -> Model:
    """A classifier (bad, good) whose probability of good is `probability(columns)`."""

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        good = np.clip(probability(dict(zip(FEATURES, X.T, strict=True))), 0, 1)
        return np.column_stack([1 - good, good])

    return Model(
        name=name, format="python", kind="other", task="classification",
        n_features=len(FEATURES), feature_names=FEATURES, class_names=["bad", "good"],
        output_spaces=("probability",), sha256="", native=None, predict_fn=predict,
        categories={"Home": HOME},
    )  # fmt: skip


def applicant(data: Dataset, **values: float) -> Dataset:
    """A one-row Dataset: an ordinary applicant, with `values` set."""
    row = {"Age": 40.0, "Debt": 2000.0, "Income": 100.0, "Amount": 1000.0, "Price": 1200.0}
    row |= {"Home": 2.0} | values
    return Dataset(frame=pd.DataFrame([row])[FEATURES], sha256="", categories=data.categories)


def rules(data: Dataset, text: str):
    return parse_constraints(text, data, "rules.yaml")


@pytest.fixture(scope="module")
def scorer(data) -> Typicality:
    return Typicality(data)


def search(model, data, text, scorer, **options) -> RecourseSearch:
    return RecourseSearch(model, data, rules(data, text), typicality=scorer, **options)


def test_the_age_that_alone_decides_is_never_changed(data, scorer) -> None:
    model = toy(lambda c: (c["Age"] >= 50) * 0.8 + 0.1)
    free = search(model, data, "max_changes: 3\n", scorer).find(applicant(data), "good")
    assert free.found and all(set(c.changes) == {"Age"} for c in free.counterfactuals)
    found = search(model, data, "immutable: [Age]\n", scorer).find(applicant(data), "good")
    assert not found.found and found.counterfactuals == []
    assert CLOSEST.fullmatch(found.message) and CLOSEST.fullmatch(found.message)[1] == "0.10"
    assert "Age" not in found.closest.changes


def test_recourse_goes_through_other_features_when_age_is_immutable(data, scorer) -> None:
    model = toy(lambda c: 0.2 + 0.4 * (c["Age"] >= 50) + 0.35 * (c["Income"] >= 200))
    found = search(model, data, "immutable: [Age]\n", scorer).find(applicant(data), "good")
    assert found.found
    for counterfactual in found.counterfactuals:
        assert "Age" not in counterfactual.changes and counterfactual.row[0] == 40
        assert counterfactual.probability >= 0.5


def test_a_monotone_feature_never_moves_the_way_that_would_help(data, scorer) -> None:
    """More debt is what the model rewards; debt may only go down: none found, and the
    message says how near the closest came (Income alone: 0.46)."""
    model = toy(lambda c: 0.2 + 0.26 * (c["Income"] >= 200) + 0.5 * (c["Debt"] >= 5000))
    free = search(model, data, "max_changes: 1\n", scorer).find(applicant(data), "good")
    assert [set(c.changes) for c in free.counterfactuals] == [{"Debt"}]
    answer = search(model, data, "monotone: {Debt: decrease}\n", scorer).find(
        applicant(data), "good"
    )
    assert not answer.found
    assert answer.message == (
        "none found within these constraints; the closest reaches 0.46 of the 0.5 threshold"
    )
    assert answer.closest.probability == pytest.approx(0.46)
    assert answer.closest.changes["Income"][1] >= 200 and answer.closest.typicality is None
    assert answer.closest.changes.get("Debt", (0, 0))[1] <= 2000


def test_a_changed_value_stays_in_its_range(data, scorer) -> None:
    model = toy(lambda c: 0.2 + 0.6 * (c["Amount"] >= 3000))
    narrow = search(model, data, "ranges: {Amount: [100, 2500]}\n", scorer)
    assert CLOSEST.fullmatch(narrow.find(applicant(data), "good").message)
    wide = search(model, data, "ranges: {Amount: [100, 3300]}\n", scorer)
    found = wide.find(applicant(data), "good")
    assert found.found
    for counterfactual in found.counterfactuals:
        before, after = counterfactual.changes["Amount"]
        assert before == 1000 and 3000 <= after <= 3300


def test_categories_make_only_the_approved_moves(data, scorer) -> None:
    model = toy(lambda c: 0.2 + 0.6 * (c["Home"] == HOME.index("owner")))
    renter = applicant(data)
    no_move = search(model, data, "transitions: {Home: {rent: [parents]}}\n", scorer)
    assert not no_move.find(renter, "good").found
    allowed = search(model, data, "transitions: {Home: {rent: [owner]}}\n", scorer)
    found = allowed.find(renter, "good")
    assert [c.changes for c in found.counterfactuals] == [{"Home": ("rent", "owner")}]
    assert found.counterfactuals[0].sentence == (
        "If Home were owner instead of rent, the model would predict good (probability 0.80)"
    )
    # parents is not listed as a category that may move: it stays
    assert not allowed.find(applicant(data, Home=1.0), "good").found


def test_no_more_features_change_than_the_maximum(data, scorer) -> None:
    model = toy(lambda c: 0.2 + 0.15 * (c["Income"] >= 200) + 0.15 * (c["Debt"] <= 500))
    one = search(model, data, "max_changes: 1\n", scorer).find(applicant(data), "good")
    assert not one.found and CLOSEST.fullmatch(one.message)[1] == "0.35"
    two = search(model, data, "max_changes: 2\n", scorer).find(applicant(data), "good")
    assert two.found
    assert {frozenset(c.changes) for c in two.counterfactuals} == {frozenset({"Income", "Debt"})}


def test_a_counterfactual_no_one_in_the_data_resembles_is_not_shown(data, scorer) -> None:
    """Only a large loan for a cheap good gets the outcome: valid, but unlike every
    applicant, so it is refused, unless typicality is not asked for."""
    model = toy(lambda c: 0.2 + 0.6 * ((c["Amount"] >= 3500) & (c["Price"] <= 1000)))
    text = "immutable: [Age, Income, Home, Debt]\n"
    refused = search(model, data, text, scorer).find(applicant(data), "good")
    assert not refused.found
    assert refused.message == (
        "none found within these constraints that is typical of the data (typicality of "
        "at least 0.01)"
    )
    anyhow = search(model, data, text, scorer, min_typicality=0.0).find(applicant(data), "good")
    assert anyhow.found and all(c.typicality < 0.01 for c in anyhow.counterfactuals)


def test_what_is_shown_is_valid_typical_diverse_and_minimal(data, scorer) -> None:
    model = toy(
        lambda c: (
            1 / (1 + np.exp(-((c["Income"] - 150) / 30 - c["Debt"] / 2000 - (c["Home"] == 2))))
        )
    )
    finder = search(model, data, "immutable: [Age]\nmax_changes: 3\n", scorer, k=4)
    answer = finder.find(applicant(data, Income=80.0, Debt=3000.0), "good")
    shown = answer.counterfactuals
    assert 2 <= len(shown) <= 4
    assert len({frozenset(c.changes) for c in shown}) == len(shown)  # each a different set
    rows = np.vstack([c.row for c in shown])
    assert (model.predict(rows, "probability")[:, 1] >= 0.5).all()
    typicality = [
        r.typicality for r in scorer.score(Dataset(pd.DataFrame(rows, columns=FEATURES), ""))
    ]
    assert typicality == pytest.approx([c.typicality for c in shown])
    assert min(typicality) >= 0.01
    original = applicant(data, Income=80.0, Debt=3000.0).values[0]
    for c in shown:  # undoing any one change loses the outcome
        for j in np.flatnonzero(c.row != original):
            undone = c.row.copy()
            undone[j] = original[j]
            assert model.predict(undone, "probability")[0, 1] < 0.5
    ordered = [(len(c.changes), c.distance) for c in shown]
    assert ordered == sorted(ordered)
    json.dumps(answer.to_dict())


def test_the_same_seed_gives_the_same_answer(data, scorer) -> None:
    """A budget too small for a whole level: the seeded sample decides what is tried."""
    model = toy(lambda c: 1 / (1 + np.exp(-((c["Income"] - 200) / 20 - c["Debt"] / 1000))))
    first, again, other = (
        search(model, data, "max_changes: 3\n", scorer, budget=300, seed=seed).find(
            applicant(data, Debt=5000.0), "good"
        )
        for seed in (1, 1, 2)
    )
    assert first.to_dict() == again.to_dict() and first.evaluated == 300
    assert other.evaluated == 300
    tight = search(
        toy(lambda c: 0.2 + 0.6 * (c["Debt"] > 1e9)), data, "max_changes: 2", scorer, budget=300
    )
    assert tight.find(applicant(data), "good").message.startswith(
        "none found within these constraints and a budget of 300 model rows; the closest reaches 0.20"
    )


def test_sentences_say_the_change_in_the_users_words(data, scorer) -> None:
    model = toy(lambda c: 0.2 + 0.6 * (c["Amount"] <= 500))
    found = search(model, data, "max_changes: 1\n", scorer, k=1).find(
        applicant(data, Amount=2500.0), "good"
    )
    (counterfactual,) = found.counterfactuals
    assert counterfactual.changes == {"Amount": (2500, 500)}
    assert counterfactual.sentence == (
        "If Amount were 2,000 lower (500), the model would predict good (probability 0.80)"
    )


def test_a_row_with_the_outcome_already_and_bad_requests(data, scorer) -> None:
    model = toy(lambda c: 0.9 + 0 * c["Age"])
    answer = find_recourse(model, data, 0, "good", typicality=scorer)
    assert answer.message == "the model already predicts good for this row (0.90)"
    assert answer.row == 0 and not answer.found
    with pytest.raises(WhyboxError, match="unknown target class 'great'"):
        find_recourse(model, data, 0, "great", typicality=scorer)
    with pytest.raises(WhyboxError, match="row 800 is not in the data"):
        find_recourse(model, data, 800, "good", typicality=scorer)
    other = Dataset(data.frame[FEATURES[:-1]], "")
    with pytest.raises(WhyboxError, match="read them against this data"):
        RecourseSearch(model, data, parse_constraints("max_changes: 2", other, "r.yaml"))
    regressor = toy(lambda c: c["Age"])
    regressor.task = "regression"
    with pytest.raises(WhyboxError, match="recourse needs a classifier"):
        RecourseSearch(regressor, data)


@pytest.fixture(scope="module")
def credit():
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    coded = {c: {float(i): n for i, n in enumerate(v)} for c, v in demos.CREDIT_CATEGORIES.items()}
    constraints = parse_constraints(demos.CREDIT_CONSTRAINTS, data, "credit.yaml", coded)
    declined = np.flatnonzero(model.predict(data.values, "probability")[:, 1] < 0.5)
    return model, data, constraints, coded, declined[:200]


@pytest.mark.slow
def test_two_hundred_declined_credit_applicants(credit) -> None:
    """Every counterfactual shown is valid (the model asked again), keeps to every rule
    (immutable, monotone, ranges, transitions, max_changes) and is typical of the data;
    the median number of changes is at most 3."""
    model, data, constraints, coded, declined = credit
    assert len(declined) == 200 and model.class_names == ["bad", "good"]
    start = time.perf_counter()
    finder = RecourseSearch(model, data, constraints, coded=coded)
    answers = [finder.find(int(row), "good") for row in declined]
    seconds = time.perf_counter() - start
    shown = [(row, c) for row, a in zip(declined, answers, strict=True) for c in a.counterfactuals]
    rows = np.vstack([c.row for _, c in shown])
    assert (model.predict(rows, "probability")[:, 1] >= 0.5).all()
    scores = Typicality(data, coded=coded).score(
        Dataset(pd.DataFrame(rows, columns=data.feature_names), "")
    )
    assert min(s.typicality for s in scores) >= 0.01
    features = data.feature_names
    for row, c in shown:
        before = data.values[row]
        assert constraints.violations(before, c.row) == []
        for name in ("Age", "Marital", "Records"):
            assert c.row[features.index(name)] == before[features.index(name)]
        for name, way in constraints.monotone.items():
            j = features.index(name)
            assert (c.row[j] - before[j]) * (1 if way == "increase" else -1) >= 0
    assert np.median([len(c.changes) for _, c in shown]) <= 3
    assert sum(a.found for a in answers) >= 190
    for answer in answers:
        assert answer.found or answer.message.startswith("none found within these constraints")
    assert seconds < 60, f"{seconds:.0f} s for 200 rows"


@pytest.mark.slow
def test_dice_keeps_immutable_features_and_ranges_only(data, scorer) -> None:
    """DiCE's own handling, on a model where every way to the outcome breaks a rule: it
    never changes a feature left out of `features_to_vary` nor leaves `permitted_range`,
    but, given what it takes natively, raises debt that may only fall and moves a
    category where no move is approved; ours finds none and says how near it came."""
    pytest.importorskip("dice_ml")
    from benchmarks.recourse import run_dice

    model = toy(
        lambda c: (
            0.1
            + 0.45
            * ((c["Age"] >= 50) + (c["Debt"] >= 5000) + (c["Amount"] >= 3000) + (c["Home"] == 0))
        )
    )
    constraints = rules(
        data,
        "immutable: [Age]\nmonotone: {Debt: decrease}\nranges: {Amount: [100, 2500]}\n"
        "transitions: {Home: {rent: [parents]}}\n",
    )
    c = dict(zip(FEATURES, data.values.T, strict=True))
    declined = (c["Age"] < 50) & (c["Debt"] < 5000) & (c["Amount"] < 3000) & (c["Home"] == 2)
    rows = np.flatnonzero(declined)[:4]
    ours = RecourseSearch(model, data, constraints, typicality=scorer)
    assert not any(ours.find(int(r), "good").found for r in rows)
    shown = run_dice("random", model, data, constraints, rows, per_row=False).shown
    assert shown
    broken = {
        v.split(":")[0] for before, after in shown for v in constraints.violations(before, after)
    }
    assert broken and broken <= {"Debt", "Home"}  # monotone and transitions, never Age or Amount
    for before, after in shown:
        assert after[0] == before[0] and after[3] <= 2500
    per_row = run_dice("random", model, data, constraints, rows, per_row=True).shown
    assert all(not constraints.violations(before, after) for before, after in per_row)


def test_with_three_classes_the_desired_one_must_also_be_predicted(data, scorer) -> None:
    """Income alone lifts good over the threshold but leaves maybe the predicted class;
    only with debt paid down as well is good predicted."""

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        c = dict(zip(FEATURES, X.T, strict=True))
        good = 0.1 + 0.35 * (c["Income"] >= 200)
        maybe = 0.5 - 0.3 * (c["Debt"] <= 500)
        return np.column_stack([1 - good - maybe, maybe, good])

    model = Model(
        name="three", format="python", kind="other", task="classification",
        n_features=len(FEATURES), feature_names=FEATURES, class_names=["bad", "maybe", "good"],
        output_spaces=("probability",), sha256="", native=None, predict_fn=predict,
    )  # fmt: skip
    finder = search(model, data, "immutable: [Age]\n", scorer, threshold=0.4)
    found = finder.find(applicant(data), "good")
    assert found.found
    assert {frozenset(c.changes) for c in found.counterfactuals} == {frozenset({"Income", "Debt"})}


@pytest.mark.parametrize("pairs", [1_050, 2**40])  # a row as one number, and too wide for one
def test_each_distinct_set_of_changes_is_kept_once_in_order(pairs) -> None:
    from whybox.trust.recourse import _first_of_each

    rng = np.random.default_rng(0)
    sets = np.sort(rng.integers(0, 40, size=(5_000, 3)), axis=1) * (pairs // 40)
    _, first = np.unique(sets, axis=0, return_index=True)
    kept = _first_of_each(sets, pairs)
    assert np.array_equal(kept, np.sort(first)) and len(kept) < len(sets)
