"""Plugins arrive through entry points; a broken one is reported, never fatal."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from whybox.explainers import registry
from whybox.explainers.testing import check_explainer
from whybox.model_zoo import WhyboxError

WHYBOX = str(Path(sys.executable).with_name("whybox"))
BUILT_INS = {
    "tree-shap",
    "exact-shapley",
    "permutation-shap",
    "kernel-shap",
    "integrated-gradients",
    "saliency",
    "smoothgrad",
    "grad-cam",
    "guided-grad-cam",
    "occlusion",
    "partition-shap",
    "deeplift",
    "gradient-shap",
    "feature-ablation",
    "lime",
    "auto",
}


def test_built_ins_register_through_the_entry_point_group():
    entries = {e.name: e for e in registry.entries()}
    assert set(entries) >= BUILT_INS
    for name in BUILT_INS:
        assert entries[name].error is None, entries[name].error
        assert entries[name].explainer.name == name


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_every_built_in_passes_the_contract(name):
    assert check_explainer(registry.get(name))


PLUGIN = """
import numpy as np
from whybox.explainers.base import Explainer, Param


class Occlusion(Explainer):
    \"\"\"Output drop when each feature is set to zero.\"\"\"

    name = "zero-occlusion"
    display_name = "Zero occlusion"
    summary = "How much the output drops when a feature is set to zero (a test plugin)."
    scale = Param(float, 1.0, "Multiplies the values.", low=0.0)

    def _explain(self, *, model, X, targets, output_space, **_):
        full = model.predict(X, output_space)[np.arange(len(X)), targets]
        values = np.empty_like(X)
        for i in range(X.shape[1]):
            zeroed = X.copy()
            zeroed[:, i] = 0
            values[:, i] = full - model.predict(zeroed, output_space)[np.arange(len(X)), targets]
        return self.new_explanation(model, X, targets, output_space, self.scale * values, 0.0)
"""


def fake_distribution(root: Path, dist: str, entry_points: str, **modules: str) -> None:
    """A distribution that exists only as a dist-info directory next to its modules."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{textwrap.dedent(entry_points)}")


def install_fake_plugin(root: Path) -> None:
    fake_distribution(
        root,
        "zero-plugin",
        """
        zero-occlusion = zero_plugin:Occlusion
        broken-method = no_such_module_anywhere:Thing
        """,
        zero_plugin=PLUGIN,
    )


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    """`tmp_path` on sys.path, with the registry rediscovering plugins before and after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield tmp_path
    registry.refresh()


def test_plugin_appears_and_broken_one_is_reported(tmp_path):
    install_fake_plugin(tmp_path)
    result = subprocess.run(
        [WHYBOX, "explainers"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "a test plugin" in lines["zero-occlusion"]
    assert (
        "unavailable" in lines["broken-method"] and "ModuleNotFoundError" in lines["broken-method"]
    )
    assert set(lines) >= BUILT_INS


def test_plugin_runs_in_process_and_passes_the_contract(on_path):
    install_fake_plugin(on_path)
    registry.refresh()
    plugin = registry.get("zero-occlusion")
    assert [p.name for p in plugin.params] == ["output_space", "device", "seed", "scale"]
    assert check_explainer(plugin, {"scale": 2.0}) == [
        "binary-mlp",
        "multiclass-mlp",
        "regression-mlp",
        "binary-xgboost",
    ]
    entry = {e.name: e for e in registry.entries()}["zero-occlusion"]
    assert (entry.distribution, entry.target) == ("zero-plugin", "zero_plugin:Occlusion")
    with pytest.raises(WhyboxError, match="'broken-method' cannot be used: ModuleNotFoundError"):
        registry.get("broken-method")


def test_unknown_name_lists_the_registered_ones():
    assert registry.names() == sorted(registry.names())
    assert set(registry.names()) >= BUILT_INS
    with pytest.raises(WhyboxError, match="unknown explainer 'nope'; .*tree-shap") as error:
        registry.get("nope")
    assert "\n" not in str(error.value)


def test_two_distributions_claiming_one_name_are_reported_not_chosen(on_path):
    fake_distribution(on_path, "dist-a", "zero-occlusion = conflict_a:Occlusion", conflict_a=PLUGIN)
    fake_distribution(on_path, "dist-b", "zero-occlusion = conflict_b:Occlusion", conflict_b=PLUGIN)
    registry.refresh()
    entry = {e.name: e for e in registry.entries()}["zero-occlusion"]
    assert entry.explainer is None
    assert entry.error == (
        "explainer name 'zero-occlusion' is registered by dist-a (conflict_a:Occlusion) and "
        "dist-b (conflict_b:Occlusion); uninstall all but one of them"
    )
    assert entry.summary.startswith("unavailable: explainer name 'zero-occlusion'")
    assert registry.names().count("zero-occlusion") == 1
    with pytest.raises(WhyboxError, match="dist-a .*dist-b") as error:
        registry.get("zero-occlusion")
    assert "\n" not in str(error.value)
    assert "conflict_a" not in sys.modules and "conflict_b" not in sys.modules


def test_one_distribution_seen_twice_is_not_a_conflict(on_path, monkeypatch):
    for copy in ("first", "second"):
        (on_path / copy).mkdir()
        fake_distribution(on_path / copy, "twice", "zero-occlusion = twice_plugin:Occlusion")
        monkeypatch.syspath_prepend(str(on_path / copy))
    (on_path / "twice_plugin.py").write_text(PLUGIN)
    registry.refresh()
    entry = {e.name: e for e in registry.entries()}["zero-occlusion"]
    assert entry.error is None
    assert (entry.distribution, entry.target) == ("twice", "twice_plugin:Occlusion")


def test_a_class_must_be_an_explainer_under_its_own_name(on_path):
    fake_distribution(
        on_path,
        "misnamed",
        """
        other-name = misnamed_plugin:Occlusion
        not-a-class = json:dumps
        """,
        misnamed_plugin=PLUGIN,
    )
    registry.refresh()
    found = {e.name: e for e in registry.entries()}
    assert found["other-name"].explainer is None
    assert found["other-name"].error == (
        "misnamed_plugin:Occlusion declares name 'zero-occlusion' but is registered as 'other-name'"
    )
    assert found["not-a-class"].error == "json:dumps is not an Explainer subclass"
    with pytest.raises(WhyboxError, match="cannot be used: misnamed_plugin:Occlusion declares"):
        registry.get("other-name")


LAZY = """
import json, sys
from whybox.explainers import registry

def imported():
    modules = {e.target.split(":")[0] for e in registry.entries()} | {"captum", "torch", "shap"}
    return sorted(modules & set(sys.modules))

registry.names()
listed = [e.name for e in registry.entries()]
before = imported()
registry.get("zero-occlusion")
print(json.dumps({"listed": listed, "before": before, "after": imported()}))
"""


def test_listing_imports_nothing_and_get_imports_only_what_it_returns(tmp_path):
    install_fake_plugin(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", LAZY],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert set(found["listed"]) >= BUILT_INS | {"zero-occlusion", "broken-method"}
    assert found["before"] == []
    assert "zero_plugin" in found["after"]
    assert "whybox.explainers.gradients" not in found["after"]
