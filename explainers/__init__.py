"""Computing and judging explanations; knows nothing of the UI."""

from whybox.explainers.base import Explainer, Explanation, Param, Support
from whybox.explainers.registry import entries, get

__all__ = ["Explainer", "Explanation", "Param", "Support", "entries", "get"]
