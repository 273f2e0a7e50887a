"""An example whybox explainer plugin: mean ablation.

Each feature in turn is set to its mean over background rows sampled from the data; a
feature's value is how much the explained output drops, times `scale`. The base value is
the output at the mean row. Not additive: the drops ignore interactions.
"""

from __future__ import annotations

import numpy as np

from whybox.explainers.base import BACKGROUND, Explainer, Param


class MeanAblation(Explainer):
    name = "mean-ablation"  # the entry-point name: `whybox explain --explainer mean-ablation`
    display_name = "Mean ablation"
    summary = (
        "How much the output drops when each feature alone is set to its background mean; "
        "simple and model-agnostic, blind to interactions."
    )
    # Inherited from Explainer: output_space, device and seed (--output-space, --device, --seed).
    background = BACKGROUND  # --background N: rows sampled from the data for the mean
    scale = Param(float, 1.0, "Multiplies every value (to change units).", low=0.0)
    modalities = ("tabular",)

    def _explain(self, *, model, dataset, X, targets, output_space, device, progress):
        # The background is drawn from the dataset by seed, the same for every row, so a
        # row gets the same values alone or in a batch. No other randomness is used.
        mean = dataset.background(self.background, self.seed).mean(axis=0)
        rows = np.arange(len(X))
        full = model.predict(X, output_space)[rows, targets]
        values = np.empty(X.shape, dtype=np.float64)
        n_features = X.shape[1]
        for i in range(n_features):
            ablated = np.array(X, dtype=np.float64)  # a writable copy: X is read-only
            ablated[:, i] = mean[i]
            values[:, i] = full - model.predict(ablated, output_space)[rows, targets]
            progress(i + 1, n_features)
        base_values = model.predict(mean[None, :], output_space)[0, targets]
        return self.new_explanation(
            model, X, targets, output_space, self.scale * values, base_values
        )
