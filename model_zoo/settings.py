"""Operator settings that model_zoo reads from the environment (never from an uploaded file).

The dashboard's own settings (its run store, the user header) are in whybox.dashboard.settings.
"""

import os
from pathlib import Path

TRUST_ENV = "WHYBOX_TRUST_MODELS"
CACHE_ENV = "WHYBOX_CACHE_DIR"


def trusted_loading_enabled() -> bool:
    """Whether the operator switched on loading of formats that can run code (pickle etc.)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """Where demo models and data are cached after their first, deterministic training."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "whybox"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
