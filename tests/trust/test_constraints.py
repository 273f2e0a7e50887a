"""The constraints file: read against the data, what each rule allows, and every mistake a
one-line error naming the file's line at fault."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from whybox.model_zoo import Dataset, WhyboxError, demos
from whybox.trust.constraints import (
    MAX_CHANGES,
    load_constraints,
    parse_constraints,
    unconstrained,
)

FEATURES = ["Age", "Debt", "Income", "Amount", "Home", "Records"]
HOME = ["owner", "parents", "rent"]
RECORDS = {0.0: "no", 1.0: "yes"}  # numeric codes the data dictionary names


@pytest.fixture(scope="module")
def data() -> Dataset:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "Age": rng.integers(20, 70, 100).astype(float),
            "Debt": rng.integers(0, 5000, 100).astype(float),
            "Income": rng.integers(50, 300, 100).astype(float),
            "Amount": rng.integers(100, 4000, 100).astype(float),
            "Home": rng.integers(0, 3, 100).astype(float),
            "Records": rng.integers(0, 2, 100).astype(float),
        }
    )
    return Dataset(frame=frame, sha256="", categories={"Home": HOME})


def parse(text: str, data: Dataset):
    return parse_constraints(text, data, "rules.yaml", {"Records": RECORDS})


def test_a_file_reads_into_rules_by_name(data) -> None:
    rules = parse(
        """\
max_changes: 2
immutable: [Age]
monotone: {Debt: decrease, Income: increase}
ranges:
  Amount: [100, 5000.5]
transitions:
  Home: {rent: [owner, parents], parents: [rent]}
  Records: {yes: [no]}      # YAML would read yes and no as booleans: names stay names
""",
        data,
    )
    assert rules.features == tuple(FEATURES)
    assert rules.max_changes == 2 and rules.immutable == {"Age"}
    assert rules.monotone == {"Debt": "decrease", "Income": "increase"}
    assert rules.ranges == {"Amount": (100.0, 5000.5)}
    assert rules.transitions == {
        "Home": {"rent": {"owner", "parents"}, "parents": {"rent"}},
        "Records": {"yes": {"no"}},
    }
    assert rules.levels["Home"] == {0.0: "owner", 1.0: "parents", 2.0: "rent"}


def test_each_rule_allows_only_its_moves(data) -> None:
    rules = parse(
        "immutable: [Age]\nmonotone: {Debt: decrease}\nranges: {Amount: [100, 5000]}\n"
        "transitions: {Home: {rent: [owner]}}\nmax_changes: 2\n",
        data,
    )
    owner, parents, rent = 0.0, 1.0, 2.0
    assert not rules.allows("Age", 30, 31) and rules.allows("Age", 30, 30)
    assert rules.allows("Debt", 500, 0) and not rules.allows("Debt", 500, 600)
    assert not rules.allows("Debt", np.nan, 0)  # from a missing value the way is unknown
    assert rules.allows("Amount", 9000, 5000) and not rules.allows("Amount", 900, 5001)
    assert rules.allows("Amount", 9000, 9000)  # a value kept is no change, whatever the range
    assert rules.allows("Home", rent, owner) and not rules.allows("Home", rent, parents)
    assert not rules.allows("Home", parents, owner)  # a category not listed stays
    assert rules.allows("Income", 10, 1e6) and not rules.allows("Income", 10, np.nan)
    # a feature's candidates at once: the changes among them that the rules allow, in order
    candidates = np.array([0.0, 400.0, 500.0, 600.0, np.nan, 450.0])
    assert rules.moves("Debt", 500, candidates).tolist() == [0.0, 400.0, 450.0]
    assert rules.moves("Amount", 900, candidates).tolist() == [400.0, 500.0, 600.0, 450.0]
    assert rules.moves("Age", 30, candidates).tolist() == []
    assert rules.moves("Home", rent, np.array([owner, parents, rent])).tolist() == [owner]
    assert rules.moves("Income", np.nan, candidates).tolist() == [0, 400, 500, 600, 450]
    before = np.array([30, 500, 100, 1000, rent, 0])
    assert rules.violations(before, before) == []
    after = np.array([31, 600, 200, 1000, parents, 0])
    assert rules.violations(after=after, before=before) == [
        "4 features change, more than 2",
        "Age: 30 -> 31",
        "Debt: 500 -> 600",
        "Home: rent -> parents",
    ]


def test_no_file_means_only_the_default_maximum(data) -> None:
    rules = unconstrained(data, {"Records": RECORDS})
    assert rules.max_changes == MAX_CHANGES and not rules.immutable and not rules.transitions
    assert rules.allows("Home", 2.0, 0.0) and rules.levels["Records"] == RECORDS


def test_the_credit_example_reads_against_the_demo_data(tmp_path) -> None:
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    coded = {c: dict(enumerate(names)) for c, names in demos.CREDIT_CATEGORIES.items()}
    path = tmp_path / "credit.yaml"
    path.write_text(demos.CREDIT_CONSTRAINTS)
    rules = load_constraints(path, data, coded)
    assert rules.immutable == {"Age", "Marital", "Records"} and rules.max_changes == 3
    assert rules.transitions["Home"]["rent"] == {"owner", "parents"}
    with pytest.raises(WhyboxError, match="cannot read constraints file"):
        load_constraints(tmp_path / "absent.yaml", data, coded)


ERRORS = [
    (
        "immutable: [Age, Salary]\n",
        1,
        "unknown column 'Salary'; the data's columns are 'Age', 'Debt'",
    ),
    ("monotone:\n  Debt: decrease\n  Wealth: increase\n", 3, "unknown column 'Wealth'"),
    (
        "transitions:\n  Home:\n    rent: [owner, castle]\n",
        3,
        "'Home' has no category 'castle'; its categories are 'owner', 'parents', 'rent'",
    ),
    ("transitions:\n  Home:\n    boat: [owner]\n", 3, "'Home' has no category 'boat'"),
    (
        "transitions:\n  Records: {yes: [maybe]}\n",
        2,
        "'Records' has no category 'maybe'; its categories are 'no', 'yes'",
    ),
    (
        "immutable: [Age, Debt]\nmonotone:\n  Debt: decrease\n",
        3,
        "'Debt' is immutable (line 1) and cannot also have a direction",
    ),
    (
        "immutable: [Amount]\nranges: {Amount: [1, 2]}\n",
        2,
        "'Amount' is immutable (line 1) and cannot also have a range",
    ),
    (
        "immutable:\n  - Home\ntransitions:\n  Home: {rent: [owner]}\n",
        4,
        "'Home' is immutable (line 2) and cannot also have transitions",
    ),
    ("ranges:\n  Amount: [5000, 100]\n", 2, "the range of 'Amount' has low 5000 above high 100"),
    ("ranges:\n  Amount: [100]\n", 2, "must be [low, high]"),
    ("ranges:\n  Amount: [low, 100]\n", 2, "must be a number, got 'low'"),
    ("ranges:\n  Home: [0, 1]\n", 2, "'Home' is categorical; give it transitions"),
    ("monotone: {Home: increase}\n", 1, "'Home' is categorical"),
    (
        "transitions:\n  Debt: {0: [1]}\n",
        2,
        "'Debt' is numeric; transitions apply to categorical columns",
    ),
    ("monotone:\n  Debt: down\n", 2, "'Debt' must be increase or decrease, got 'down'"),
    ("transitions:\n  Home: {rent: [rent, owner]}\n", 2, "'rent' may not move to itself"),
    ("max_changes: 0\n", 1, "max_changes must be a whole number of at least 1"),
    ("max_changes: 1.5\n", 1, "max_changes must be a whole number"),
    ("max_changes: three\n", 1, "max_changes must be a number"),
    (
        "# rules\nimmutable: [Age]\nmonotone: {Debt: decrease}\nallowed: [Debt]\n",
        4,
        "unknown key 'allowed'; the keys are 'max_changes', 'immutable'",
    ),
    ("immutable: [Age]\nimmutable: [Debt]\n", 2, "'immutable' is given twice"),
    ("immutable: [Age, Age]\n", 1, "'Age' is listed twice"),
    ("immutable: {Age: true}\n", 1, "immutable must be a list of names"),
    ("- Age\n- Debt\n", 1, "expected a YAML mapping"),
    ("immutable: [Age\nmonotone: {}\n", 2, "expected ',' or ']'"),
]


@pytest.mark.parametrize(("text", "line", "problem"), ERRORS)
def test_mistakes_name_the_line_at_fault(data, text, line, problem) -> None:
    with pytest.raises(WhyboxError) as error:
        parse(text, data)
    message = str(error.value)
    assert message.startswith(f"constraints file rules.yaml, line {line}: "), message
    assert problem in message and "\n" not in message


@pytest.mark.parametrize(
    ("raw", "problem"),
    [(b"", "is empty"), (b"# nothing\n", "holds only comments"), (b"\xff\xfe\x00", "not UTF-8")],
)
def test_files_that_hold_no_rules_say_so(data, raw, problem) -> None:
    with pytest.raises(WhyboxError, match=problem):
        parse_constraints(raw, data, "rules.yaml")


def test_empty_sections_are_no_rules(data) -> None:
    rules = parse("immutable: []\nmonotone:\nranges: {}\n", data)
    assert rules == unconstrained(data, {"Records": RECORDS})
