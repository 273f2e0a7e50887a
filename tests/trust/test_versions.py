"""Version diffs against planted changes: a cohort whose labels B learned wrong, a feature
B never learned from, and versions that differ by nothing but chance."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tests.trust.versions_models import applicants, in_cohort, read, train
from whybox.model_zoo import WhyboxError, load_data
from whybox.trust import versions
from whybox.trust.versions import diff_models


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A trained on honest labels; B on labels flipped in the planted cohort; fresh rows."""
    tmp = tmp_path_factory.mktemp("versions")
    honest = applicants(4000, 1)
    wrong = honest.copy()
    cohort = in_cohort(wrong)
    wrong.loc[cohort, "Status"] = np.where(wrong.Status[cohort] == "good", "bad", "good")
    a, b = train(honest, tmp / "a.json"), train(wrong, tmp / "b.json", seed=1)
    rows = applicants(3000, 2)
    return rows, a, b, diff_models(a, read(rows, a), b, read(rows, b), favourable="good")


def test_the_planted_cohort_is_found(planted):
    rows, _, _, found = planted
    truth = in_cohort(rows)
    reported = np.zeros(len(rows), dtype=bool)
    for cohort in found.cohorts:
        reported[cohort.members] = True
    assert (reported & truth).sum() >= 0.8 * truth.sum()
    assert (reported & truth).sum() >= 0.8 * reported.sum()
    for cohort in found.cohorts:
        assert "home is rent" in cohort.rule and "age ≤ 29" in cohort.rule
        assert cohort.p_adjusted < 0.05 and cohort.gap_interval[0] > 0
        assert cohort.b_loss > cohort.a_loss + versions.MIN_GAP["classification"]
        assert cohort.worse + cohort.better <= cohort.held_out_rows < cohort.rows


def test_decisions_count_flips_and_the_favourable_class(planted):
    rows, a, b, found = planted
    class_a = a.predict(read(rows, a).values, "probability").argmax(axis=1)
    class_b = b.predict(read(rows, b).values, "probability").argmax(axis=1)
    flips = found.decisions["flips"]
    assert flips["rows"] == (class_a != class_b).sum() > 0
    assert sum(p["rows"] for p in flips["pairs"]) == flips["rows"]
    favourable = found.decisions["favourable"]
    assert favourable["gained"] == ((class_a == 0) & (class_b == 1)).sum()
    assert favourable["lost"] == ((class_a == 1) & (class_b == 0)).sum()
    largest = found.decisions["largest"]
    flipped_first = [e["class_a"] != e["class_b"] for e in largest]
    assert flipped_first == sorted(flipped_first, reverse=True)
    assert sum(found.decisions["change"]["counts"]) == len(rows)


def test_performance_intervals_are_paired_and_cover_the_change(planted):
    rows, _, _, found = planted
    accuracy = found.performance["accuracy"]
    low, high = accuracy["change_interval"]
    assert low <= accuracy["change"] <= high < 0  # B is worse overall, and surely so
    for side in ("a", "b"):
        p = accuracy[side]
        width = accuracy[f"{side}_interval"][1] - accuracy[f"{side}_interval"][0]
        exact = 2 * 1.96 * np.sqrt(p * (1 - p) / len(rows))
        assert 0.7 * exact < width < 1.3 * exact


def test_reasons_are_compared_with_one_method_side_by_side(planted):
    _, _, _, found = planted
    reasons = found.reasons
    assert reasons["method"] == "tree-shap" and reasons["target"] == "good"
    assert reasons["rows_explained"] == versions.EXPLAINED_ROWS
    changes = [abs(f["change"]) for f in reasons["features"]]
    assert changes == sorted(changes, reverse=True)
    compared = reasons["rows"]
    assert len(compared) == versions.COMPARED_ROWS
    for row in compared:
        a, b = {r["feature"] for r in row["a"]}, {r["feature"] for r in row["b"]}
        assert set(row["appeared"]) == b - a and set(row["disappeared"]) == a - b


def test_a_feature_b_never_learned_from_ranks_first(tmp_path):
    honest = applicants(3000, 3)
    shuffled = honest.copy()
    shuffled["income"] = np.random.default_rng(0).permutation(shuffled["income"].to_numpy())
    a, b = train(honest, tmp_path / "a.json"), train(shuffled, tmp_path / "b.json")
    rows = applicants(1000, 4)
    found = diff_models(a, read(rows, a), b, read(rows, b))
    first = found.reasons["features"][0]
    assert first["feature"] == "income" and first["rank_a"] <= 2
    assert first["change"] < -5 * first["change_se"]


def test_versions_differing_by_chance_report_no_cohort(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "BOOTSTRAP", 10)  # the cohorts do not use the bootstrap
    reported = 0
    for seed in range(20):
        rows = applicants(3000, 100 + seed)
        a = train(rows, tmp_path / "a.json", seed=seed)
        b = train(rows, tmp_path / "b.json", seed=seed + 1000)
        fresh = applicants(3000, 200 + seed)
        found = diff_models(a, read(fresh, a), b, read(fresh, b), seed=seed, explain=False)
        reported += bool(found.cohorts)
        assert found.cohort_search["tested_rows"] == 1500
    assert reported <= 1  # at least 95 % of seeds


def test_a_model_against_itself_changes_nothing(tmp_path):
    rows = applicants(500, 5)
    a = train(rows, tmp_path / "a.json")
    found = diff_models(a, read(rows, a), a, read(rows, a))
    assert found.decisions["flips"]["rows"] == 0 and not found.cohorts
    assert found.performance["accuracy"]["change_interval"] == [0.0, 0.0]
    assert all(f["change"] == 0 and f["rank_a"] == f["rank_b"] for f in found.reasons["features"])
    assert all(not r["appeared"] and not r["changed_sign"] for r in found.reasons["rows"])


def test_classes_in_another_order_are_aligned_by_name(tmp_path):
    rows = applicants(1500, 6)
    a = train(rows, tmp_path / "a.json")
    b = train(rows, tmp_path / "b.json", classes=["good", "bad"])
    assert b.output_names == ["good", "bad"]
    found = diff_models(a, read(rows, a), b, read(rows, b), explain=False)
    assert found.decisions["flips"]["share"] < 0.05
    assert abs(found.decisions["change"]["mean"]) < 0.01


def test_columns_in_another_order_are_matched_by_name(tmp_path):
    rows = applicants(800, 7)
    a = train(rows, tmp_path / "a.json")
    b = train(rows[["noise", "debt", "home", "income", "age", "Status"]], tmp_path / "b.json")
    found = diff_models(a, read(rows, a), b, read(rows, b))
    names = {f["feature"] for f in found.reasons["features"]}
    assert names == {"age", "income", "home", "debt", "noise"}
    assert found.decisions["flips"]["share"] < 0.1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": "noise"}, "only model A takes noise"),
        ({"task": "regression"}, "model A is a classifier and model B a regressor"),
        ({"classes": ["no", "yes"]}, "model A's classes are bad, good and model B's no, yes"),
    ],
)
def test_models_that_differ_get_a_one_line_error(tmp_path, change, message):
    rows = applicants(300, 8)
    a = train(rows, tmp_path / "a.json")
    b = train(rows, tmp_path / "b.json", **change)
    with pytest.raises(WhyboxError, match=message) as raised:
        versions.check_compatible(a, b)
    assert "\n" not in str(raised.value)


def test_a_favourable_class_must_be_the_models(tmp_path):
    rows = applicants(300, 9)
    a = train(rows, tmp_path / "a.json")
    with pytest.raises(WhyboxError, match="favourable class 'approved'"):
        diff_models(a, read(rows, a), a, read(rows, a), favourable="approved")


def test_a_rule_says_where_missing_values_go():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    x[rng.random(2000) < 0.2] = np.nan
    frame = pd.DataFrame({"x": x, "y": rng.normal(size=2000)})
    data = load_data(frame.to_csv(index=False).encode(), name="data.csv")
    labels = np.zeros(2000, dtype=np.int64)
    worse = (np.isnan(x) | (x > 1)) & (rng.random(2000) < 0.6)
    scores_a = np.tile([0.9, 0.1], (2000, 1))
    scores_b = np.where(worse[:, None], [0.1, 0.9], [0.9, 0.1])
    cohorts, _ = versions._cohorts(
        "classification", data, labels, scores_a, scores_b, "probability", 0.05, 0, {}
    )
    (cohort,) = cohorts  # one rule: the leaves split on noise merged back
    threshold = float(re.fullmatch(r"x > (\S+) or missing", cohort.rule)[1])
    assert 0.9 < threshold < 1.1
    assert cohort.rows == (np.isnan(x) | (x > threshold)).sum()


def demo_diff(model_a: str, model_b: str, data: str) -> tuple:
    from whybox.dashboard.reports.dictionary import coded_values, load_dictionary
    from whybox.model_zoo import demos

    a, b = (demos.resolve_model(f"demo:{name}") for name in (model_a, model_b))
    rows = demos.resolve_data(f"demo:{data}", a)
    coded = coded_values(load_dictionary(demos.demo_dictionary(f"demo:{data}")))
    found = diff_models(
        a, rows, b, demos.resolve_data(f"demo:{data}", b), favourable="good", coded=coded
    )
    return rows, found


def test_the_demo_retrained_without_a_cohort_is_worse_on_it():
    rows, found = demo_diff("credit-xgboost", "credit-xgboost-v2", "credit")
    dropped = (rows.frame["Records"] == 1).to_numpy()  # Records = yes
    reported = np.zeros(len(rows), dtype=bool)
    for cohort in found.cohorts:
        reported[cohort.members] = True
    assert (reported & dropped).sum() >= 0.8 * dropped.sum()
    assert (reported & dropped).sum() >= 0.8 * reported.sum()
    assert [c.rule for c in found.cohorts] == ["Records is yes"]
    assert found.reasons["features"][0]["feature"] == "Records"


def test_the_fine_tuned_demo_forgot_the_applicants_it_first_learned_from():
    rows, found = demo_diff("credit-mlp-30-and-over", "credit-mlp-fine-tuned", "credit-30-and-over")
    accuracy = found.performance["accuracy"]
    assert accuracy["change_interval"][1] < -0.03  # forgetting, measured with its uncertainty
    hit = np.zeros(len(rows), dtype=bool)
    for cohort in found.cohorts:
        hit[cohort.members] = True
        assert cohort.b_loss > cohort.a_loss
    assert hit.mean() > 0.5  # it hit most of the old applicants
    assert found.reasons["method"] == "permutation-shap"  # exact would cost minutes here
    assert found.reasons["rows"] and found.reasons["features"][0]["change"] < 0
