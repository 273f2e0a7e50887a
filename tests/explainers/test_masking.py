"""Coalition mixing: rows built from x and background rows must be exactly those values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from whybox.explainers.masking import MIXABLE, _mix, coalition_values
from whybox.explainers.testing import make_dataset
from whybox.model_zoo.wrap import wrap_torch


def test_float_mask_mixes_exactly_as_where():
    """0/1 float weights (the fast path) give x or the reference bit for bit, from
    subnormal to near `MIXABLE` magnitudes, broadcast as coalition_values shapes them."""
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([1e-44, 1e-38, 1.0, 1e6, MIXABLE / 4])
    x = torch.randn(3, 1, 1, 5, generator=generator).clamp(-3, 3) * scales
    reference = -torch.randn(3, 1, 4, 5, generator=generator).clamp(-3, 3) * scales
    mask = torch.rand(3, 6, 1, 5, generator=generator) < 0.5
    mixed = _mix(mask.float(), x, reference)
    assert mixed.shape == (3, 6, 4, 5)
    assert torch.equal(mixed, torch.where(mask, x, reference))


class Sign(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x[:, :1])


def test_inputs_whose_difference_overflows_still_mix_exactly():
    """x - r past float32's range would make lerp's x - (x - r) 0 a NaN: such inputs and
    non-finite ones take the boolean path."""
    for huge in (3e38, np.inf):
        frame = pd.DataFrame({"a": [huge, -huge], "b": [1.0, 2.0]})
        model, data = wrap_torch(Sign(), 2, "value"), make_dataset(frame)
        masks = np.array([[False, True], [True, False], [True, True]])
        v = coalition_values(
            model, data.values[:1], masks, data.values[1:], "value", np.zeros(1, int)
        )
        assert v.tolist() == [[-1.0, 1.0, 1.0]]
