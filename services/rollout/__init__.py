"""Staged rollout: move a candidate from a few percent of episodes to CURRENT on evidence.

Import from the modules, which keeps this package light for the command line (it composes its
settings from ``services.rollout.settings``): ``controller`` (``RolloutController``: start, tick,
abort, status), ``plan`` (``RolloutPlan``, ``parse_steps``, ``RolloutError``), ``evidence``
(per-version episode returns from the timeline and the one-sided test), ``log_table`` (the
decision log), ``metrics`` and ``settings`` (``RolloutSettings``).
"""

__all__: list[str] = []
