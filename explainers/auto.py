"""`auto`: the best exact method the model and budget allow, else the best sampled one.

For images: Integrated Gradients where the network is differentiable, else Occlusion.
"""

from __future__ import annotations

from whybox.explainers.base import BACKGROUND, Explainer, Param
from whybox.explainers.gradients import IntegratedGradients
from whybox.explainers.perturbation import Occlusion
from whybox.explainers.sampling import PermutationShap
from whybox.explainers.shapley import MAX_COST, ExactShapley, TreeShap
from whybox.model_zoo import Dataset, Model


class Auto(Explainer):
    name = "auto"
    display_name = "Automatic (best available)"
    summary = (
        "Picks tree-shap for trees, exact-shapley when 2^d coalitions fit the budget, "
        "else permutation-shap; for images integrated-gradients, else occlusion."
    )
    modalities = ("tabular", "image")
    background = BACKGROUND
    max_cost = MAX_COST
    choose = Param(
        str,
        "rule",
        "How to pick the method: rule (as above) or quality (every applicable method on a "
        "sample of rows, the most faithful on deletion and insertion; slower).",
        choices=("rule", "quality"),
    )

    def pick(self, model: Model, dataset: Dataset) -> tuple[Explainer, str]:
        """The explainer to run and, in words, why it was chosen."""
        if self.choose == "quality":
            return self._most_faithful(model, dataset)
        return self._by_rule(model, dataset)

    def _by_rule(self, model: Model, dataset: Dataset) -> tuple[Explainer, str]:
        refusals = ""
        for cls in self._candidates(model):
            candidate = cls(
                **{k: v for k, v in self.get_params().items() if k in {p.name for p in cls.params}}
            )
            support = candidate.supports(model, dataset)
            if support:
                break
            refusals = f"{cls.name} not possible: {support.reason}"
        reason = {
            TreeShap: "the model is a tree ensemble, so its Shapley values are exact and fast",
            ExactShapley: f"2^{model.n_features} coalitions fit within max_cost",
            PermutationShap: f"sampled estimate with standard errors ({refusals})",
            IntegratedGradients: "the network is differentiable, so the map adds up to the "
            "prediction",
            Occlusion: f"it needs no gradients ({refusals})",
        }[type(candidate)]
        return candidate, reason

    def _most_faithful(self, model: Model, dataset: Dataset) -> tuple[Explainer, str]:
        from whybox.explainers import registry
        from whybox.explainers.quality import rank_methods

        ranking = rank_methods(model, dataset, seed=self.seed)
        best = ranking[0]
        if best.faithfulness is None:
            return self._by_rule(model, dataset)
        cls = registry.get(best.method)
        shared = {k: v for k, v in self.get_params().items() if k in {p.name for p in cls.params}}
        ranked = sum(r.faithfulness is not None for r in ranking)
        return cls(**shared), (
            f"the most faithful of {ranked} methods on a sample of rows (deletion "
            f"{best.scores['deletion']:.3g}, insertion {best.scores['insertion']:.3g} times "
            "a random order)"
        )

    @staticmethod
    def _candidates(model: Model) -> tuple[type[Explainer], ...]:
        if model.modality == "image":
            return (IntegratedGradients, Occlusion)
        return (TreeShap, ExactShapley, PermutationShap)

    def supports(self, model: Model, dataset: Dataset | None = None):
        return self._candidates(model)[-1]().supports(model, dataset)

    def _delegate(self, model: Model, dataset: Dataset) -> tuple[Explainer, str]:
        return self.pick(model, dataset)
