"""Plugins arrive through entry points; a broken one is reported, never fatal."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from whybox.explainers import registry
from whybox.explainers.testing import check_explainer

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


PLUGIN = '''
import numpy as np
from whybox.explainers.base import SEED, Explainer


class Occlusion(Explainer):
    """Output drop when each feature is set to zero."""

    name = "zero-occlusion"
    display_name = "Zero occlusion"
    summary = "How much the output drops when a feature is set to zero (a test plugin)."
    params = (SEED,)

    def _explain(self, *, model, X, targets, output_space, **_):
        full = model.predict(X, output_space)[np.arange(len(X)), targets]
        values = np.empty_like(X)
        for i in range(X.shape[1]):
            zeroed = X.copy()
            zeroed[:, i] = 0
            values[:, i] = full - model.predict(zeroed, output_space)[np.arange(len(X)), targets]
        return self.new_explanation(model, X, targets, output_space, values, 0.0)
'''


def install_fake_plugin(root: Path) -> None:
    """A distribution that exists only as a dist-info directory next to its module."""
    (root / "zero_plugin.py").write_text(PLUGIN)
    info = root / "zero_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zero-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [whybox.explainers]
            zero-occlusion = zero_plugin:Occlusion
            broken-method = no_such_module_anywhere:Thing
            """
        )
    )


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


def test_plugin_runs_in_process_and_passes_the_contract(tmp_path, monkeypatch):
    install_fake_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    try:
        plugin = registry.get("zero-occlusion")
        assert check_explainer(plugin) == [
            "binary-mlp",
            "multiclass-mlp",
            "regression-mlp",
            "binary-xgboost",
        ]
        with pytest.raises(Exception, match="failed to load"):
            registry.get("broken-method")
    finally:
        registry.refresh()
