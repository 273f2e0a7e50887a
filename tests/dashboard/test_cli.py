"""The command line as a contract: outputs, run records, and one-line errors with status 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from whybox.dashboard.cli.main import main
from whybox.model_zoo import demos

WHYBOX = str(Path(sys.executable).with_name("whybox"))


def run(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_explain_demo_writes_attributions_and_run_record(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = run(
        capsys, "explain", "demo:credit-xgboost", "demo:credit", "--rows", "0:25", "--out", out
    )
    assert status == 0, err
    frame = pd.read_csv(out / "attributions.csv")
    record = json.loads((out / "run.json").read_text())
    assert list(frame.columns[:2]) == ["row", "Seniority"] and list(frame.columns[-2:]) == [
        "base_value",
        "prediction",
    ]
    assert frame["row"].tolist() == list(range(25))
    features = frame.drop(columns=["row", "base_value", "prediction"])
    np.testing.assert_allclose(features.sum(1) + frame.base_value, frame.prediction, atol=1e-4)
    assert record["explainer"] == "tree-shap" and record["params"]["chosen_by"] == "auto"
    assert record["output_space"] == "margin" and record["target"] == ["good"]
    assert len(record["model"]["sha256"]) == 64 and len(record["data"]["sha256"]) == 64
    assert record["model"]["format"] == "xgboost-json"
    assert record["versions"]["xgboost"] and record["seconds"] >= 0
    assert record["additivity_gap"] < 1e-4
    assert set(record["files"]) == {"attributions.csv", "inputs.csv", "explanation.npz"}
    inputs = pd.read_csv(out / "inputs.csv")
    assert list(inputs.columns) == ["row", *frame.columns[1:-2]]
    model = demos.resolve_model("demo:credit-xgboost")
    rows = demos.resolve_data("demo:credit", model).values[:25]
    np.testing.assert_array_equal(inputs.drop(columns="row").to_numpy(), rows)


def test_explain_named_explainer_and_options(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = run(
        capsys,
        "explain",
        "demo:credit-mlp",
        "demo:credit",
        "--explainer",
        "exact-shapley",
        "--rows",
        "3:5",
        "--output-space",
        "probability",
        "--background",
        "8",
        "--seed",
        "4",
        "--target",
        "bad",
        "--out",
        out,
    )
    assert status == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["params"]["background"] == 8 and record["seed"] == 4
    assert record["output_space"] == "probability" and record["target"] == ["bad"]
    frame = pd.read_csv(out / "attributions.csv")
    assert frame["row"].tolist() == [3, 4]
    assert ((frame.prediction >= 0) & (frame.prediction <= 1)).all()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["explain", "missing.json", "demo:credit", "--out", "x"], ["not found", "missing.json"]),
        (["explain", "demo:nope", "demo:credit", "--out", "x"], ["unknown demo", "nope"]),
        (
            ["explain", "demo:credit-xgboost", "demo:credit", "--explainer", "magic", "--out", "x"],
            ["unknown explainer", "magic"],
        ),
        (
            ["explain", "demo:credit-xgboost", "demo:credit", "--rows", "a:b", "--out", "x"],
            ["--rows"],
        ),
        (
            ["explain", "demo:credit-xgboost", "demo:credit", "--target", "maybe", "--out", "x"],
            ["target class", "maybe"],
        ),
        (
            [
                "explain",
                "demo:credit-xgboost",
                "demo:credit",
                "--output-space",
                "probability",
                "--explainer",
                "tree-shap",
                "--out",
                "x",
            ],
            ["margin"],
        ),
        (["explain", "demo:credit-xgboost", "demo:cancer", "--out", "x"], ["lacks", "Seniority"]),
        (
            [
                "explain",
                "demo:credit-xgboost",
                "demo:credit",
                "--explainer",
                "tree-shap",
                "--background",
                "5",
                "--out",
                "x",
            ],
            ["tree-shap takes no --background"],
        ),
        (["explain", "demo:credit-xgboost", "demo:credit", "--bogus", "--out", "x"], ["--bogus"]),
        (["explain", "demo:credit-xgboost"], ["missing"]),
        (["explainers", "demo:credit-xgboost"], ["both"]),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, *args)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word.lower() in lines[0].lower()


def test_explainers_lists_all_or_those_that_fit(capsys):
    status, stdout, _ = run(capsys, "explainers")
    names = [line.split()[0] for line in stdout.splitlines()]
    assert status == 0
    assert {
        "tree-shap",
        "exact-shapley",
        "permutation-shap",
        "kernel-shap",
        "integrated-gradients",
        "auto",
    } <= set(names)
    status, stdout, _ = run(capsys, "explainers", "demo:credit-xgboost", "demo:credit")
    fitting = [line.split()[0] for line in stdout.splitlines()]
    assert "tree-shap" in fitting and "integrated-gradients" not in fitting
    status, stdout, _ = run(capsys, "explainers", "demo:cancer-mlp", "demo:cancer")
    fitting = [line.split()[0] for line in stdout.splitlines()]
    assert (
        "integrated-gradients" in fitting
        and "tree-shap" not in fitting
        and "exact-shapley" not in fitting
    )


def test_demos_lists_and_exports(tmp_path, capsys):
    status, stdout, _ = run(capsys, "demos", "--write", tmp_path)
    assert status == 0 and "demo:credit-xgboost" in stdout and "demo:cancer" in stdout
    assert {p.name for p in tmp_path.iterdir()} >= {
        "credit.csv",
        "credit-xgboost.json",
        "cancer-mlp.safetensors",
    }


def test_console_script_end_to_end(tmp_path):
    """The installed `whybox` script: real process, real exit codes."""
    models = tmp_path / "files"
    assert subprocess.run([WHYBOX, "demos", "--write", models], capture_output=True).returncode == 0
    done = subprocess.run(
        [
            WHYBOX,
            "explain",
            models / "cancer-xgboost.json",
            models / "cancer.csv",
            "--label",
            "diagnosis",
            "--rows",
            "0:10",
            "--out",
            tmp_path / "out",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(tmp_path / "out" / "attributions.csv")) == 10
    failed = subprocess.run(
        [WHYBOX, "explain", models / "cancer.csv", models / "cancer.csv", "--out", "x"],
        capture_output=True,
        text=True,
    )
    assert (
        failed.returncode == 2
        and failed.stderr.startswith("error: ")
        and "Traceback" not in failed.stderr
    )
    debug = subprocess.run(
        [WHYBOX, "explain", models / "cancer.csv", models / "cancer.csv", "--out", "x", "--debug"],
        capture_output=True,
        text=True,
    )
    assert "Traceback" in debug.stderr


def test_the_dashboards_pages_compute_with_one_thread():
    """`whybox dashboard` holds OpenMP (XGBoost's included) and BLAS to one thread in its own
    process, for the libraries it loads later as for those already loaded."""
    code = (
        "import json, os, numpy\n"
        "from whybox.dashboard.cli.main import _one_thread_per_page\n"
        "_one_thread_per_page()\n"
        "import xgboost\n"
        "from threadpoolctl import threadpool_info\n"
        "print(json.dumps([os.environ['OMP_THREAD_LIMIT'], "
        "sorted({(i['user_api'], i['num_threads']) for i in threadpool_info()})]))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    limit, pools = json.loads(shown.stdout)
    assert limit == "1"
    assert {api for api, _ in pools} == {"blas", "openmp"}, pools
    assert {threads for _, threads in pools} == {1}, pools
