"""Plugins from outside whybox: the example distribution in examples/ and the README's own.

The example plugin is installed by `make install` (`pip install -e
examples/whybox-example-plugin`); the README's plugin is installed here as a fake
distribution (its module and a dist-info directory on PYTHONPATH), as a user would write it
from the README alone, and run through the command line and `check_explainer`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from whybox.explainers import registry

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
WHYBOX = str(Path(sys.executable).with_name("whybox"))
EXAMPLE = "whybox-example-plugin"
INSTALL_HINT = f"run `make install` (pip install --no-deps -e examples/{EXAMPLE})"
FEATURES_OF_CREDIT = 13


def explain(out: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WHYBOX, "explain", "demo:credit-xgboost", "demo:credit", "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


# The example distribution, installed from examples/ ------------------------------------


def test_example_distribution_is_installed_and_registered():
    try:
        distribution = metadata.distribution(EXAMPLE)
    except metadata.PackageNotFoundError:
        pytest.fail(f"the example plugin is not installed: {INSTALL_HINT}")
    assert distribution.version == "0.1.0"
    points = {ep.name: ep.value for ep in distribution.entry_points if ep.group == registry.GROUP}
    assert points == {"mean-ablation": "whybox_example_plugin:MeanAblation"}
    cls = registry.get("mean-ablation")
    assert cls.__module__ == "whybox_example_plugin" and cls.__name__ == "MeanAblation"
    assert {p.name for p in cls.params} == {"output_space", "device", "seed", "background", "scale"}


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory) -> dict[float, Path]:
    """The example plugin through the command line, with scale 1 and 2."""
    runs = {}
    for scale in (1, 2):
        out = tmp_path_factory.mktemp("mean-ablation") / f"scale-{scale}"
        result = explain(
            out,
            "--explainer",
            "mean-ablation",
            "--rows",
            "0:5",
            "--output-space",
            "probability",
            "--param",
            f"scale={scale}",
        )
        assert result.returncode == 0, result.stderr
        assert "explained 5 rows with mean-ablation in" in result.stdout
        assert "warning:" not in result.stderr
        runs[scale] = out
    return runs


def test_example_plugin_runs_through_the_cli(example_runs):
    out = example_runs[2]
    assert {"attributions.csv", "run.json", "explanation.npz"} <= {p.name for p in out.iterdir()}
    frame = pd.read_csv(out / "attributions.csv")
    assert frame["row"].tolist() == [0, 1, 2, 3, 4]
    values = frame.drop(columns=["row", "base_value", "prediction"]).to_numpy()
    assert values.shape == (5, FEATURES_OF_CREDIT) and np.isfinite(values).all()
    assert np.abs(values).max() > 0
    probabilities = frame[["base_value", "prediction"]].to_numpy()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    record = json.loads((out / "run.json").read_text())
    assert record["method"] == "mean-ablation" and record["explainer"] == "mean-ablation"
    assert record["params"]["scale"] == 2.0 and record["output_space"] == "probability"
    assert record["additive"] is False and record["failures"] == []
    with np.load(out / "explanation.npz", allow_pickle=False) as arrays:
        np.testing.assert_allclose(arrays["values"], values, rtol=1e-9)


def test_example_plugin_scale_multiplies_the_values(example_runs):
    one, two = (pd.read_csv(example_runs[s] / "attributions.csv") for s in (1, 2))
    features = [c for c in one.columns if c not in ("row", "base_value", "prediction")]
    np.testing.assert_allclose(two[features], 2 * one[features], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(two[["base_value", "prediction"]], one[["base_value", "prediction"]])


# The README's plugin, written from the README alone -------------------------------------


def readme_plugin_blocks() -> tuple[list[str], dict[str, str]]:
    """The python blocks of the README's plugin section, and its entry points (name: target)."""
    text = README.read_text()
    section = text.split("## Writing an explainer plugin", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    python = [code for language, code in blocks if language == "python"]
    (toml,) = [code for language, code in blocks if language == "toml"]
    points = tomllib.loads(toml)["project"]["entry-points"][registry.GROUP]
    return python, points


def install_readme_plugin(root: Path) -> tuple[str, str, str]:
    """The README's module and a dist-info directory naming its entry point, in `root`.

    Returns the explainer's name, module and class."""
    python, points = readme_plugin_blocks()
    assert len(python) >= 2, "the plugin section needs the plugin and its test as python blocks"
    ((name, target),) = points.items()
    module, _, cls = target.partition(":")
    (root / f"{module}.py").write_text(python[0])
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{name} = {target}\n")
    return name, module, cls


def test_readme_plugin_runs_through_the_cli_and_passes_check_explainer(tmp_path):
    plugin_dir = tmp_path / "site"
    plugin_dir.mkdir()
    name, module, cls = install_readme_plugin(plugin_dir)
    python_path = os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}

    out = tmp_path / "run"
    result = explain(
        out,
        "--explainer",
        name,
        "--rows",
        "0:5",
        "--output-space",
        "probability",
        "--device",
        "cpu",
        "--seed",
        "3",
        "--param",
        "scale=2",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert f"with {name} in" in result.stdout and "warning:" not in result.stderr
    frame = pd.read_csv(out / "attributions.csv")
    values = frame.drop(columns=["row", "base_value", "prediction"]).to_numpy()
    assert values.shape == (5, FEATURES_OF_CREDIT) and np.isfinite(values).all()
    record = json.loads((out / "run.json").read_text())
    assert record["method"] == name and record["output_space"] == "probability"
    assert record["device"] == "cpu" and record["seed"] == 3
    assert record["params"]["scale"] == 2.0

    # The README's test block as written, then check_explainer on the registered class.
    test_block = readme_plugin_blocks()[0][1]
    script = test_block + textwrap.dedent(
        f"""
        import json
        from whybox.explainers import registry
        from whybox.explainers.testing import check_explainer

        for _name, _test in list(globals().items()):
            if _name.startswith("test_") and callable(_test):
                _test()
        plugin = registry.get({name!r})
        assert (plugin.__module__, plugin.__name__) == ({module!r}, {cls!r})
        print(json.dumps(check_explainer(plugin)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    checked = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"binary-mlp", "multiclass-mlp", "regression-mlp", "binary-xgboost"} <= set(checked)
