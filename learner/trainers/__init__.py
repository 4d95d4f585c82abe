"""Trainers: one-step reward model and offline Double DQN (CQL / BCQ), and the served policy.

One training loop (``loop.py``) runs every algorithm; each algorithm is a class behind one
interface in ``algorithms/``, found by the name ``TrainerSettings.algorithm`` gives.

``training.train`` (and ``choose_algorithm``) runs one; ``config`` holds ``TrainerSettings``
and ``ExplorationSettings``; ``algorithms`` the ``Algorithm`` classes and ``ALGORITHMS`` (by
name); ``policy`` the served ``PolicyModule`` and ``StochasticPolicy``; ``result`` the
``TrainResult``.

Import from the modules: this file stays empty so that the command line, which composes the
learner's settings from ``config``, does not import torch.
"""

__all__: list[str] = []
