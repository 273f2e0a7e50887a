"""How far to trust an explanation: whether its input is like the data the model learned
from (per row: `typicality`), and whether a population has moved since (per data set, and
in the model's predictions, performance and explanations: `shift`), and what changed
between two versions of a model (`versions`).

Depends on `model_zoo` and `explainers`; the dashboard and the command line present what
it computes.
"""
