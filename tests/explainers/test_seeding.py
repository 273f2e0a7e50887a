"""Same seed, same values, whatever else runs: every registered explainer gives, bit for
bit, the same values in four threads at once as alone, and whatever numpy's and torch's
global generators hold. The dashboard explains for several sessions in threads of one
process, each session with its own copy of the model, so each thread here has its own
copy too."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from whybox.explainers import registry
from whybox.explainers.partition import PartitionShap
from whybox.explainers.seeding import numpy_generator, torch_generator
from whybox.explainers.testing import (
    FIXTURES,
    fixture,
    image_set,
    make_dataset,
    patch_images,
    synthetic_frame,
)
from whybox.model_zoo import Dataset, Model
from whybox.model_zoo.image_data import ImageSet

THREADS, ROUNDS = 4, 2
QUICK = {
    "integrated-gradients": {"steps": 16},
    "gradient-shap": {"samples": 16},
    "lime": {"samples": 40},
    "smoothgrad": {"samples": 4},
    "permutation-shap": {"background": 20, "permutations": 2},
    "kernel-shap": {"background": 20, "samples": 64},
    "exact-shapley": {"background": 20},
    "partition-shap": {"evaluations": 64},
    "occlusion": {"window": 7, "stride": 7},
    "auto": {"background": 20},
}
"""Small budgets: the test is about equality, not accuracy."""
TABULAR, IMAGES = make_dataset(synthetic_frame()), image_set(patch_images(8, seed=1)[0])
ROWS = {"tabular": [0, 1, 2, 3], "image": [0, 1]}


def cases() -> list[tuple[str, str]]:
    """(explainer, fixture): each registered explainer on the first built-in fixture of
    each modality it supports."""
    found = []
    for entry in registry.entries():
        if entry.explainer is None:
            continue
        explainer = entry.explainer(**QUICK.get(entry.name, {}))
        modalities = set()
        for name in FIXTURES:
            model = fixture(name)
            if model.modality not in modalities and explainer.supports(model, data_for(model)):
                modalities.add(model.modality)
                found.append((entry.name, name))
    return found


def data_for(model: Model) -> Dataset | ImageSet:
    return IMAGES if model.modality == "image" else TABULAR


CASES = cases()


@contextmanager
def global_seeds(seed: int) -> Iterator[None]:
    """numpy's and torch's global generators seeded with `seed`, then put back."""
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)


@pytest.mark.parametrize(("name", "fixture_name"), CASES)
def test_threads_give_the_values_of_a_serial_run(name: str, fixture_name: str) -> None:
    model = fixture(fixture_name)
    data, rows = data_for(model), ROWS[model.modality]
    explainer = registry.get(name)(**QUICK.get(name, {}))
    alone = explainer.explain(model, data, rows=rows)
    sessions = [copy.deepcopy(model) for _ in range(THREADS)]

    def session(own_model) -> list:
        return [explainer.explain(own_model, data, rows=rows) for _ in range(ROUNDS)]

    with ThreadPoolExecutor(THREADS) as pool:
        together = [result for results in pool.map(session, sessions) for result in results]
    for result in together:
        worst = float(np.abs(result.values - alone.values).max())
        assert np.array_equal(result.values, alone.values), f"values differ by up to {worst:.3g}"
        assert np.array_equal(result.base_values, alone.base_values)


@pytest.mark.parametrize(("name", "fixture_name"), CASES)
def test_values_ignore_the_global_generators(name: str, fixture_name: str) -> None:
    model = fixture(fixture_name)
    data, rows = data_for(model), ROWS[model.modality]
    explainer = registry.get(name)(**QUICK.get(name, {}))
    runs = []
    for seed in (1, 2):
        with global_seeds(seed):
            runs.append(explainer.explain(model, data, rows=rows).values)
    assert np.array_equal(runs[0], runs[1])


def test_partition_shap_breaks_ties_from_the_image_generator() -> None:
    """SHAP orders blocks of equal priority by numpy's global generator; with a budget deep
    enough to reach blocks whose hiding leaves the output unchanged, that order shows."""
    explainer = PartitionShap(evaluations=2000)
    runs = []
    for seed in (0, 1):
        with global_seeds(seed):
            runs.append(explainer.explain(fixture("patch-cnn"), IMAGES, rows=[0]).values)
    assert np.array_equal(runs[0], runs[1])


def test_a_row_keys_the_same_generators_wherever_it_is() -> None:
    row = IMAGES.values[3]
    same = row.astype(np.float64)  # another array and dtype, the same values
    assert numpy_generator(7, row).random() == numpy_generator(7, same).random()
    assert numpy_generator(7, row).random() != numpy_generator(8, row).random()
    assert numpy_generator(7, row).random() != numpy_generator(7, IMAGES.values[4]).random()
    first = torch_generator(7, row, "cpu")
    assert first.device.type == "cpu"
    assert torch.equal(
        torch.rand(4, generator=first), torch.rand(4, generator=torch_generator(7, same, "cpu"))
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_on_cuda_gets_a_cuda_generator() -> None:
    generator = torch_generator(7, TABULAR.values[3], "cuda")
    assert generator.device.type == "cuda"
    assert torch.rand(4, generator=generator, device="cuda").device.type == "cuda"
