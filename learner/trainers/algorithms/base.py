"""What one offline algorithm decides inside the shared training loop.

The loop (:func:`learner.trainers.loop.fit`) owns everything every algorithm does the same way:
minibatch indices, the Q-network's forward and backward pass, per-member gradient clipping,
Adam, the learning-rate decay, the history and the divergence check. An algorithm says only
what differs: which rows it can learn from, the networks it needs beside the Q-network, the
targets and the loss of a step, its regularizer, what happens after a step (target networks),
and what the served policy keeps of it. Its hyper-parameters stay in
:class:`~learner.trainers.config.TrainerSettings` (configuration apart from implementation, as
in d3rlpy), so a run's settings can be logged and replayed without importing torch.

The per-step methods run tens of thousands of times: they take and return tensors, allocate
nothing the step does not need, and read everything else from attributes set in
:meth:`Algorithm.prepare`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from learner.data.logged import LoggedData
from learner.trainers.batches import MinibatchSource
from learner.trainers.config import TrainerSettings
from learner.trainers.mlp_stack import MLPStack
from learner.trainers.networks import UniformLogits

__all__ = ["Algorithm"]


class Algorithm(ABC):
    """One algorithm, configured from the trainer settings; a fresh instance per fit."""

    #: The name ``TrainerSettings.algorithm`` selects it by.
    name: ClassVar[str]

    def __init__(self, settings: TrainerSettings) -> None:
        self.settings = settings
        self._zero = torch.zeros(())  # the regularizer of an algorithm without one

    # ----------------------------------------------------------------------------- the data
    @abstractmethod
    def usable_rows(self, data: LoggedData) -> np.ndarray:
        """Indices of the rows this algorithm can learn from."""

    @property
    @abstractmethod
    def discount(self) -> float:
        """How much the next state's value counts in a target (0: immediate rewards only)."""

    @property
    @abstractmethod
    def horizon(self) -> float:
        """How many rewards a value can add up (1 for immediate rewards, ``1 / (1 - gamma)``
        discounted): bounds the values the rewards allow, for the divergence check."""

    def batch_size(self, rows: int) -> int:
        """Rows in each member's mini-batch, given ``rows`` usable rows."""
        return self.settings.batch_size

    def notes(self, data: LoggedData) -> list[str]:
        """What a person should know about fitting this algorithm to ``data``."""
        return []

    # ----------------------------------------------------------------------------- networks
    def prepare(
        self, q: MLPStack, batches: MinibatchSource, generator: torch.Generator
    ) -> list[MLPStack]:
        """Set up for fitting ``q`` on ``batches``; returns the networks trained beside ``q``
        (same optimizer and clipping). Their weights are drawn from ``generator`` after
        ``q``'s, so a seed gives the same networks whatever the algorithm."""
        return []

    # ----------------------------------------------------------------------------- one step
    @abstractmethod
    def targets(
        self, q: MLPStack, idx: torch.Tensor, rows: torch.Tensor, r: torch.Tensor
    ) -> torch.Tensor:
        """``(members, batch)`` regression targets of the logged actions' values, for the
        minibatch ``idx`` whose packed columns are ``rows`` and rewards ``r``."""

    @abstractmethod
    def value_loss(
        self, q_all: torch.Tensor, a: torch.Tensor, y: torch.Tensor, d_q: torch.Tensor
    ) -> torch.Tensor:
        """The loss of ``q_all`` at the logged actions ``a`` against ``y``; adds its gradient
        into ``d_q`` (see :mod:`learner.trainers.objectives`)."""

    def regularizer(
        self,
        q_all: torch.Tensor,
        s: torch.Tensor,
        a: torch.Tensor,
        rows: torch.Tensor,
        d_q: torch.Tensor,
    ) -> torch.Tensor:
        """An extra loss term; adds its gradient with respect to ``q_all`` into ``d_q`` and
        writes the gradients of the networks from :meth:`prepare`. None by default."""
        return self._zero

    def after_step(self, step: int, q: MLPStack) -> None:  # noqa: B027 (a hook: most need none)
        """Called after each optimizer step (target network updates)."""

    # ----------------------------------------------------------------------------- the result
    def served_imitator(self, n_actions: int) -> tuple[nn.Module, float]:
        """The served policy's action filter: an imitation model of the logger and the share
        of the most likely action's probability an action needs (0: no filter)."""
        return UniformLogits(n_actions), 0.0
