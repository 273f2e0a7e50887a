"""How far to trust an explanation: whether its input is like the data the model learned
from (per row: `typicality`), and whether a population has moved (per data set: `shift`).

Depends on `model_zoo` (and, for the classifier test, LightGBM); the dashboard and the
command line present what it computes.
"""
