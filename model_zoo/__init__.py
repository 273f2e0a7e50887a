"""Getting any model and any data into one uniform shape."""

from model_zoo.data import Dataset, load_data
from model_zoo.errors import WhyboxError
from model_zoo.loaders import load_model
from model_zoo.model import OUTPUT_SPACES, Model

__all__ = ["OUTPUT_SPACES", "Dataset", "Model", "WhyboxError", "load_data", "load_model"]
