"""Counterfactual policy evaluation: how good would a policy have been on the logged data?

One class per estimator behind one interface (``base.Estimator``), Open Bandit Pipeline style:
one-step IPS, SNIPS, DM, DR, SNDR, Switch-DR (``one_step``); sequential per-decision IS,
weighted PDIS, sequential DR, weighted DR, MAGIC (``sequential``) and FQE (``fqe``). Each
returns an ``estimate.Estimate`` (value, bootstrap interval, value normalized by the logged
policy's). ``diagnostics.diagnose`` says whether the importance weights can be trusted;
``evaluate.evaluate_policy`` runs everything the settings (``config.CpeSettings``) ask for.

Import from the modules: this file stays empty so that the command line, which composes the
learner's settings from ``config``, does not import torch.
"""

__all__: list[str] = []
