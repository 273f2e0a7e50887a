"""Loading model files (placeholder until the loaders land)."""

from pathlib import Path

from model_zoo.model import Model


def load_model(source: bytes | str | Path, name: str | None = None, trusted: bool | None = None) -> Model:
    raise NotImplementedError
