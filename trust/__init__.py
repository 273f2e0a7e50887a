"""How far to trust an explanation: whether its input is like the data the model learned
from (per row: `typicality`), and whether a population has moved since (per data set, and
in the model's predictions, performance and explanations: `shift`), and what changed
between two versions of a model (`versions`); and the reasoning a person can check: rules
that mimic the model (`rules`, read from trees by `tree_rules`), a glass-box model beside it
(`glassbox`), cohorts and where the model errs (`cohorts`, `error_analysis`), and what would
change a decision (`recourse`, within `constraints`).

Depends on `model_zoo` and `explainers`; the dashboard and the command line present what
it computes.
"""
