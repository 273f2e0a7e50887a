"""Reason codes: ranking, the sign for the other class, not-allowed features, reason-text files."""

from dataclasses import replace

import numpy as np
import pytest

from whybox.dashboard.reports.reasons import ReasonText, decide, load_reason_texts
from whybox.explainers import Explanation, registry
from whybox.model_zoo import WhyboxError, demos

FEATURES = ["Income", "Debt", "Age", "Records", "Gender", "Assets"]
HOSTILE = "<script>alert(1)</script> **x** [a](javascript:x) =cmd"


def explanation(names=FEATURES, outputs=("bad", "good"), target=1) -> Explanation:
    return Explanation(
        values=np.array([[0.5, -0.9, -0.1, -0.6, -0.7, -0.3], [0.2, 0.0, 0.1, 0.3, 0.0, 0.4]]),
        base_values=np.array([0.4, 0.4]),
        data=np.array([[1200.0, 40.0, 30.0, 1.0, 0.0, 5000.0], [9.0, 0.0, 1.0, 2.0, 3.0, 4.0]]),
        predictions=np.array([-1.7, 1.4]),
        feature_names=list(names),
        output_names=list(outputs),
        target=np.array([target, target]),
        output_space="margin",
        method="test",
        params={},
        seed=0,
        device="cpu",
        rows=np.array([10, 11]),
    )


def features(decision) -> list[str]:
    return [r.feature for r in decision.reasons]


def test_reasons_are_the_adverse_features_ranked_by_their_push() -> None:
    decision = decide(explanation(), 0, favourable="good", predicted_class="bad")
    assert features(decision) == ["Debt", "Gender", "Records", "Assets"]
    assert [r.contribution for r in decision.reasons] == [0.9, 0.7, 0.6, 0.3]
    assert [r.value for r in decision.reasons] == [40.0, 0.0, 1.0, 5000.0]
    assert decision.reasons[0].statement == "Debt = 40 lowered the log-odds of class 'good' by 0.9"
    assert (decision.row, decision.predicted_class, decision.favourable) == (10, "bad", False)
    assert decision.prediction == -1.7 and decision.flagged == []
    assert features(decide(explanation(), 0, "good", "bad", k=2)) == ["Debt", "Gender"]
    favoured = decide(explanation(), 1, "good", "good")  # no feature pushed toward 'bad'
    assert favoured.favourable and favoured.reasons == [] and favoured.row == 11


def test_binary_explanation_of_the_other_class_flips_the_sign() -> None:
    good = explanation()
    bad = replace(good, values=-good.values, base_values=-good.base_values, target=np.array([0, 0]))
    mine, flipped = decide(good, 0, "good", "bad"), decide(bad, 0, "good", "bad")
    assert [(r.feature, r.value, r.contribution) for r in flipped.reasons] == [
        (r.feature, r.value, r.contribution) for r in mine.reasons
    ]
    assert flipped.reasons[0].statement == "Debt = 40 raised the log-odds of class 'bad' by 0.9"


def test_not_allowed_features_are_never_reasons_and_flagged_when_among_the_top_k() -> None:
    texts = {
        "Gender": ReasonText("Sex of the applicant", allowed=False),
        "Debt": ReasonText("Debt too high for the income"),
        "Income": ReasonText("Income", allowed=False),  # not adverse: neither reason nor flag
    }
    decision = decide(explanation(), 0, "good", "bad", texts)
    assert features(decision) == ["Debt", "Records", "Assets", "Age"]
    assert decision.reasons[0].statement == "Debt too high for the income"
    assert decision.reasons[1].statement.startswith("Records = 1 lowered")
    assert [(r.feature, r.contribution) for r in decision.flagged] == [("Gender", 0.7)]
    one = decide(explanation(), 0, "good", "bad", texts, k=1)  # Gender ranks second: no flag
    assert features(one) == ["Debt"] and one.flagged == []


def test_markup_and_script_in_names_stay_literal_in_statements() -> None:
    names, outputs = [HOSTILE, *FEATURES[1:]], ("no", "<b>yes</b>")
    decision = decide(explanation(names, outputs), 0, "<b>yes</b>", "no")
    assert (
        decision.reasons[0].statement
        == "Debt = 40 lowered the log-odds of class '<b>yes</b>' by 0.9"
    )
    flipped = decide(explanation(names, outputs, target=0), 0, "<b>yes</b>", "no")
    assert flipped.reasons[0].feature == HOSTILE
    assert (
        flipped.reasons[0].statement == f"{HOSTILE} = 1200 raised the log-odds of class 'no' by 0.5"
    )


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: decide(explanation(), 0, "approved", "bad"), ["'approved'", "'bad', 'good'"]),
        (
            lambda: decide(explanation(), 0, "good", "bad", {"Incme": ReasonText("x")}),
            ["'Incme'", "'Income'"],
        ),
        (
            lambda: decide(explanation(outputs=("a", "b", "c")), 0, "a", "b"),
            ["class 'b'", "--target a"],
        ),
        (lambda: decide(replace(explanation(), signed=False), 0, "good", "bad"), ["signed"]),
        (
            lambda: decide(replace(explanation(), output_space="value"), 0, "good", "bad"),
            ["classifier"],
        ),
    ],
)
def test_decide_refuses_what_it_cannot_answer(call, words) -> None:
    with pytest.raises(WhyboxError) as info:
        call()
    assert all(word in str(info.value) for word in words), str(info.value)


def test_multiclass_explanation_of_the_favourable_class_is_answered() -> None:
    decision = decide(explanation(outputs=("a", "good", "c")), 0, "good", "c")
    assert features(decision) == ["Debt", "Gender", "Records", "Assets"]


def test_other_class_gives_the_same_reasons_on_a_real_model() -> None:
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    explainer = registry.get("tree-shap")()
    good, bad = (
        explainer.explain(model, data, rows=slice(0, 30), target=t) for t in ("good", "bad")
    )
    predicted = [model.class_names[i] for i in model.predict(data.values[:30]).argmax(axis=1)]
    assert "bad" in predicted and "good" in predicted
    counts = []
    for position, label in enumerate(predicted):
        mine, flipped = (decide(e, position, "good", label) for e in (good, bad))
        assert features(flipped) == features(mine)
        counts.append(len(mine.reasons))
        np.testing.assert_allclose(
            [r.contribution for r in flipped.reasons],
            [r.contribution for r in mine.reasons],
            atol=1e-6,
        )
        assert mine.reasons[0].contribution == pytest.approx(-good.values[position].min())
        assert mine.favourable == (label == "good")
    assert max(counts) == 4 and min(counts) >= 1


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_reason_texts_from_csv_and_yaml(tmp_path) -> None:
    csv = write(
        tmp_path,
        "texts.csv",
        '\ufeffFeature,Statement,Allowed\nDebt,"Debt too high, for the income",\n'
        "Gender,Sex,false\n\nAge,Age of the applicant,yes\n",
    )
    expected = {
        "Debt": ReasonText("Debt too high, for the income"),
        "Gender": ReasonText("Sex", allowed=False),
        "Age": ReasonText("Age of the applicant"),
    }
    assert load_reason_texts(csv) == expected
    assert load_reason_texts(write(tmp_path, "two.csv", "feature,statement\nDebt,Too much\n")) == {
        "Debt": ReasonText("Too much")
    }
    yaml = write(
        tmp_path,
        "texts.yml",
        "Debt: Debt too high, for the income\nGender: {statement: Sex, allowed: false}\n"
        "Age:\n  statement: Age of the applicant\n  allowed: true\n",
    )
    assert load_reason_texts(yaml) == expected


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("t.csv", "feature,text\nDebt,Too much\n", ["t.csv", "no 'statement' column"]),
        ("t.csv", "feature,statement,alowed\nDebt,x,no\n", ["column 'alowed' unknown"]),
        ("t.csv", "feature,statement,allowed\nDebt,x,no\nAge,y,maybe\n", ["line 3", "'maybe'"]),
        ("t.csv", "feature,statement\nDebt,too, much\n", ["line 2", "3 cells"]),
        ("t.csv", "feature,statement\nDebt,x\nDebt,y\n", ["line 3", "'Debt' is given twice"]),
        ("t.csv", "feature,statement\nDebt,\n", ["line 2", "must not be empty"]),
        ("t.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", ["t.csv", "not UTF-8"]),
        ("t.csv", "", ["t.csv", "is empty"]),
        ("t.yaml", " \n", ["t.yaml", "is empty"]),
        ("t.yaml", "Debt: [unclosed\n", ["t.yaml", "line 2"]),
        ("t.yaml", "- Debt\n- Age\n", ["expected a YAML mapping"]),
        ("t.yaml", "Debt: {statement: x, allowed: maybe}\n", ["key 'Debt'", "true or false"]),
        ("t.yaml", "Debt: {text: x}\n", ["key 'Debt'", "unknown field text"]),
        ("t.yaml", "Debt: 3\n", ["key 'Debt'", "must be text"]),
        ("t.yaml", "Debt: x\nAge: y\nDebt: z\n", ["line 3", "'Debt' is given twice"]),
        ("t.txt", "Debt: x\n", [".csv, .yaml or .yml"]),
    ],
)
def test_bad_reason_text_files_say_where_and_what_is_expected(tmp_path, name, content, words):
    with pytest.raises(WhyboxError) as info:
        load_reason_texts(write(tmp_path, name, content))
    assert all(word in str(info.value) for word in words), str(info.value)


def test_missing_reason_text_file(tmp_path) -> None:
    with pytest.raises(WhyboxError, match="cannot read reason-text file"):
        load_reason_texts(tmp_path / "nowhere.csv")
