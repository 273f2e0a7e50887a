"""The data dictionary: read from CSV or YAML, checked line by line, and shown in reasons,
charts and reports (the credit demo's own names its codes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from whybox.dashboard.reports import charts
from whybox.dashboard.reports.dictionary import parse_dictionary, with_dictionary
from whybox.dashboard.reports.values import feature_text, value_text
from whybox.dashboard.reports.wording import reasons
from whybox.explainers import Explanation
from whybox.model_zoo import WhyboxError

CSV = (
    b"column,label,unit,description,values\n"
    b"Home,Home ownership,,Type of home,1 = rent; 2 = owner\n"
    b"Income,,EUR,Monthly income,\n"
    b"Status,,,The label (not a feature),good = fine\n"
)
YAML = b"""
Home:
  label: Home ownership
  description: Type of home
  values: {1: rent, 2.0: owner}
Income: {unit: EUR}
"""


def explanation() -> Explanation:
    return Explanation(
        values=np.array([[0.5, -0.25], [0.1, 0.2], [-0.3, 0.0]]),
        base_values=np.zeros(3),
        data=np.array([[1.0, 1200.0], [2.0, np.nan], [1.0, 800.0]]),
        predictions=np.array([0.25, 0.3, -0.3]),
        feature_names=["Home", "Income"],
        output_names=["bad", "good"],
        target=np.array([1, 1, 1]),
        output_space="margin",
        method="test",
        params={},
        seed=0,
        device="cpu",
    )


def test_csv_and_yaml_read_alike() -> None:
    from_csv, from_yaml = parse_dictionary(CSV, "d.csv"), parse_dictionary(YAML, "d.yaml")
    assert from_csv["Home"] == {
        "label": "Home ownership",
        "description": "Type of home",
        "values": {"1": "rent", "2": "owner"},
    }
    assert from_yaml["Home"] == from_csv["Home"]
    assert from_csv["Income"] == {"unit": "EUR", "description": "Monthly income"}
    assert from_yaml["Income"] == {"unit": "EUR"}


@pytest.mark.parametrize(
    ("raw", "name", "message"),
    [
        (b"feature,label\nHome,x\n", "d.csv", "d.csv, line 1: no 'column' column"),
        (b"column,colour\nHome,red\n", "d.csv", "line 1: column 'colour' unknown"),
        (b"column,values\nHome,1 = rent\nJob,fixed\n", "d.csv", "line 3, values: 'fixed'"),
        (b"column,label\nHome,a\nHome,b\n", "d.csv", "line 3: column 'Home' is described twice"),
        (b"column,label\nHome,a,extra\n", "d.csv", "line 2: 3 cells, expected 2"),
        (b"Home: {values: {1: rent, '1': owner}}\n", "d.yaml", "code '1' is named twice"),
        (b"Home: {colour: red}\n", "d.yml", "column 'Home': unknown field colour"),
        (b"Home: {values: [rent]}\n", "d.yaml", "values must map each code to a name"),
        (b"Home: rent\n", "d.yaml", "column 'Home': expected a mapping"),
        (b"Home: {label: a}\nHome: {label: b}\n", "d.yaml", "line 2: 'Home' is given twice"),
        (b"- a\n", "d.yaml", "expected a YAML mapping"),
        (b"!!python/object:os.system {}\n", "d.yaml", "line 1"),
        (b"\xff\xfe", "d.csv", "is not UTF-8 text"),
        (b"x", "d.txt", "expected a .csv, .yaml or .yml file"),
    ],
)
def test_bad_dictionaries_are_one_line_naming_the_place(raw, name, message) -> None:
    with pytest.raises(WhyboxError, match=re.escape(message)) as caught:
        parse_dictionary(raw, name)
    assert "\n" not in str(caught.value)


def test_reasons_and_charts_use_labels_units_and_value_names() -> None:
    described = with_dictionary(explanation(), parse_dictionary(CSV, "d.csv"))
    assert set(described.dictionary) == {"Home", "Income"}  # Status is no feature
    assert feature_text(described, "Home") == "Home ownership"
    assert value_text(described, "Home", 1.0) == "rent"
    assert value_text(described, "Home", 3.0) == "3"  # a code the dictionary does not name
    assert value_text(described, "Income", 1200.0) == "1200 EUR"
    assert value_text(described, "Income", np.nan) == "missing"
    assert reasons(described, 0) == [
        "Home ownership = rent raised the log-odds of class 'good' by 0.5",
        "Income = 1200 EUR lowered the log-odds of class 'good' by 0.25",
    ]
    figure = charts.dependence(described, "Home")
    assert isinstance(figure.data[0], go.Box)
    assert list(figure.layout.xaxis.categoryarray) == ["rent", "owner"]
    assert "Home ownership = rent" in charts.waterfall(described, 0).data[0].y
    assert with_dictionary(described, None) is described


def test_the_credit_demo_names_its_codes(tmp_path: Path) -> None:
    whybox = str(Path(sys.executable).with_name("whybox"))
    out, report = tmp_path / "run", tmp_path / "report.html"
    command = [whybox, "explain", "demo:credit-xgboost", "demo:credit", "--rows", "0:5"]
    command += ["--explainer", "tree-shap", "--out", str(out), "--report", str(report)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = report.read_text()
    for column in ("Home", "Job", "Records", "Marital status"):
        assert not re.search(rf"{column} = \d", page), column
    assert re.search(r"Home = (ignore|other|owner|parents|priv|rent)\b", page)
    assert "Type of home ownership" in page and "5 = rent" in page  # the data facts
