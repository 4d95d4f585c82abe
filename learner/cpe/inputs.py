"""What the estimators read: logged decisions, the target policy's probabilities, model outputs.

Two plain numpy containers, one per problem shape, so that every estimator of a kind reads the
same arrays and nothing estimator-specific leaks into the data:

* :class:`BanditInput` -- one row per decision (contextual bandit, every episode has one step);
* :class:`SequentialInput` -- per-episode arrays padded to the longest episode, with a
  ``valid`` mask. Padding follows the *absorbing state* convention of Thomas & Brunskill
  (2016): after its end an episode earns reward 0 and its importance ratio is 1, so its
  cumulative weight stays at its final value. That is what makes the self-normalized
  (weighted) estimators well-defined for episodes of different lengths.

Structural problems (shapes, propensities outside (0, 1], actions out of range) are the data's
fault and raise ``ValueError`` naming the field. Non-finite *model outputs* (target
probabilities, reward or Q predictions) are allowed through on purpose: they make the estimates
NaN and the diagnostics say so, and the gate rejects: a broken candidate is a verdict, not a
crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import DTypeLike

from learner.cpe.model_replicates import ModelReplicates

if TYPE_CHECKING:
    from learner.data import LoggedData

__all__ = ["BanditInput", "SequentialInput"]


def _check_propensities(name: str, p: np.ndarray) -> None:
    if not np.all(np.isfinite(p)) or np.any(p <= 0) or np.any(p > 1 + 1e-9):
        bad = p[~(np.isfinite(p) & (p > 0) & (p <= 1 + 1e-9))][0]
        raise ValueError(f"{name}: every logged propensity must be in (0, 1], found {bad!r}")


def _check_shape(name: str, value: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if value is not None and value.shape != shape:
        raise ValueError(f"{name}: shape {value.shape}, expected {shape}")


def _logged_probs_or_none(logged_probs: np.ndarray) -> np.ndarray | None:
    return None if np.all(np.isnan(logged_probs)) else logged_probs


@dataclass(frozen=True, eq=False)
class BanditInput:
    """One-step logged data with the target policy's probabilities.

    ``target_probs[i, a]`` is the candidate's probability of action ``a`` in decision ``i``
    (zero on impossible actions); ``reward_hat[i, a]`` a reward model's prediction (needed by
    DM and the DR family); ``logged_probs`` the logger's full distribution where it was logged
    (rows of NaN where it was not), used only by the support diagnostic.
    """

    rewards: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    target_probs: np.ndarray
    possible_mask: np.ndarray
    reward_hat: np.ndarray | None = None
    logged_probs: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.rewards)
        if n == 0:
            raise ValueError("rewards: no decisions to evaluate")
        if self.target_probs.ndim != 2 or self.target_probs.shape[0] != n:
            raise ValueError(f"target_probs: shape {self.target_probs.shape}, expected ({n}, A)")
        a = self.target_probs.shape[1]
        _check_shape("actions", self.actions, (n,))
        _check_shape("propensities", self.propensities, (n,))
        _check_shape("possible_mask", self.possible_mask, (n, a))
        _check_shape("reward_hat", self.reward_hat, (n, a))
        _check_shape("logged_probs", self.logged_probs, (n, a))
        if not np.all(np.isfinite(self.rewards)):
            raise ValueError("rewards: every logged reward must be finite")
        if self.actions.min() < 0 or self.actions.max() >= a:
            raise ValueError(f"actions: indices must be in [0, {a})")
        _check_propensities("propensities", self.propensities)

    @classmethod
    def from_logged(
        cls,
        data: LoggedData,
        target_probs: np.ndarray,
        reward_hat: np.ndarray | None = None,
    ) -> BanditInput:
        """Decisions of ``data`` (one-step or not: each row is taken as a bandit round)."""
        return cls(
            rewards=np.asarray(data.rewards, np.float64),
            actions=np.asarray(data.actions, np.int64),
            propensities=np.asarray(data.propensities, np.float64),
            target_probs=np.asarray(target_probs, np.float64),
            possible_mask=np.asarray(data.possible_mask, bool),
            reward_hat=None if reward_hat is None else np.asarray(reward_hat, np.float64),
            logged_probs=_logged_probs_or_none(np.asarray(data.logged_probs, np.float64)),
        )

    @property
    def n(self) -> int:
        return len(self.rewards)

    @property
    def n_actions(self) -> int:
        return int(self.target_probs.shape[1])

    @cached_property
    def weights(self) -> np.ndarray:
        """Importance weights pi(a_i|x_i) / mu(a_i|x_i) of the logged actions."""
        taken = self.target_probs[np.arange(self.n), self.actions]
        weights: np.ndarray = taken / self.propensities
        return weights

    @cached_property
    def model_value(self) -> np.ndarray:
        """sum_a pi(a|x_i) q(x_i, a) over possible actions: the model's value of each decision."""
        if self.reward_hat is None:
            raise ValueError("reward_hat: this estimator needs a reward model's predictions")
        terms = np.where(self.possible_mask, self.target_probs * self.reward_hat, 0.0)
        value: np.ndarray = terms.sum(axis=1)
        return value

    @cached_property
    def reward_hat_taken(self) -> np.ndarray:
        """q(x_i, a_i): the reward model's prediction for the logged action."""
        if self.reward_hat is None:
            raise ValueError("reward_hat: this estimator needs a reward model's predictions")
        taken: np.ndarray = self.reward_hat[np.arange(self.n), self.actions]
        return taken


@dataclass(frozen=True, eq=False)
class SequentialInput:
    """Episodes padded to ``(E, T)`` (``valid`` marks real steps; see the module doc).

    ``terminal[e, t]`` is true where the environment ended the episode (the last step of an
    episode that is not terminal was truncated: cut by the log, not ended by the world).
    ``q_hat[e, t, a]`` is a Q-model's value of the target policy (for the DR family and MAGIC);
    ``q_replicates`` the members of a bagged Q-model (``q_hat`` is then their mean), from which
    the model-based estimators take the model's own uncertainty
    (:mod:`learner.cpe.model_replicates`); ``states[e, t]`` the raw features, needed only by FQE.
    """

    rewards: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    target_probs: np.ndarray
    possible_mask: np.ndarray
    valid: np.ndarray
    gamma: float
    terminal: np.ndarray | None = None
    q_hat: np.ndarray | None = None
    logged_probs: np.ndarray | None = None
    states: np.ndarray | None = None
    weight_clip: float | None = None
    q_replicates: ModelReplicates | None = None

    def __post_init__(self) -> None:
        if self.weight_clip is not None and not self.weight_clip > 0:
            raise ValueError(f"weight_clip: must be > 0 or None, got {self.weight_clip}")
        if self.valid.ndim != 2 or self.valid.shape[0] == 0:
            raise ValueError(f"valid: shape {self.valid.shape}, expected (E, T) with E > 0")
        e, t = self.valid.shape
        if self.target_probs.ndim != 3 or self.target_probs.shape[:2] != (e, t):
            raise ValueError(
                f"target_probs: shape {self.target_probs.shape}, expected ({e}, {t}, A)"
            )
        a = self.target_probs.shape[2]
        for name in ("rewards", "actions", "propensities", "terminal"):
            _check_shape(name, getattr(self, name), (e, t))
        for name in ("possible_mask", "q_hat", "logged_probs"):
            _check_shape(name, getattr(self, name), (e, t, a))
        if self.q_replicates is not None:
            _check_shape("q_replicates.q_hat", self.q_replicates.q_hat[0], (e, t, a))
        if self.states is not None and self.states.shape[:2] != (e, t):
            raise ValueError(f"states: shape {self.states.shape}, expected ({e}, {t}, F)")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma: must be in [0, 1], got {self.gamma}")
        if not self.valid[:, 0].all():
            raise ValueError("valid: every episode must have at least one step (column 0 true)")
        if np.any(self.valid[:, 1:] & ~self.valid[:, :-1]):
            raise ValueError("valid: the steps of an episode must be contiguous from step 0")
        v = self.valid
        if not np.all(np.isfinite(self.rewards[v])):
            raise ValueError("rewards: every logged reward must be finite")
        if self.actions[v].min() < 0 or self.actions[v].max() >= a:
            raise ValueError(f"actions: indices must be in [0, {a})")
        _check_propensities("propensities", self.propensities[v])

    @classmethod
    def from_logged(
        cls,
        data: LoggedData,
        target_probs: np.ndarray,
        gamma: float,
        q_hat: np.ndarray | None = None,
        weight_clip: float | None = None,
    ) -> SequentialInput:
        """Pad the episodes of ``data`` (rows sorted by episode then step, as LoggedData is).

        ``target_probs`` and ``q_hat`` are per row ``(n, A)``; they are padded the same way.
        ``weight_clip`` caps every per-decision cumulative weight (see ``cumulative_weights``).
        """
        n = len(data.rewards)
        if n == 0:
            raise ValueError("rewards: no decisions to evaluate")
        ids = np.asarray(data.episode_ids)
        change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        starts = np.concatenate(([0], change))
        lengths = np.diff(np.concatenate((starts, [n])))
        if len(np.unique(ids[starts])) != len(starts):
            raise ValueError("episode_ids: rows of an episode must be contiguous (sort the data)")
        episode = np.repeat(np.arange(len(starts)), lengths)
        step = np.arange(n) - np.repeat(starts, lengths)
        e, t = len(starts), int(lengths.max())
        a = np.asarray(target_probs).shape[1]

        def pad(values: np.ndarray, fill: float, dtype: DTypeLike) -> np.ndarray:
            values = np.asarray(values, dtype)
            out = np.full((e, t, *values.shape[1:]), fill, dtype=dtype)
            out[episode, step] = values
            return out

        valid = np.zeros((e, t), bool)
        valid[episode, step] = True
        logged = pad(data.logged_probs, np.nan, np.float64)
        return cls(
            rewards=pad(data.rewards, 0.0, np.float64),
            actions=pad(data.actions, 0, np.int64),
            propensities=pad(data.propensities, 1.0, np.float64),
            target_probs=pad(np.reshape(target_probs, (n, a)), 0.0, np.float64),
            possible_mask=pad(data.possible_mask, False, bool),
            valid=valid,
            gamma=float(gamma),
            terminal=pad(data.terminals, False, bool),
            q_hat=None if q_hat is None else pad(q_hat, 0.0, np.float64),
            logged_probs=None if np.all(np.isnan(logged[valid])) else logged,
            states=pad(data.states, np.nan, np.float32),
            weight_clip=weight_clip,
        )

    def with_q_hat(
        self, q_hat: np.ndarray, replicates: ModelReplicates | None = None
    ) -> SequentialInput:
        """The same episodes with a Q-model's predictions ``(E, T, A)`` attached, and for a
        bagged model its members (``q_hat`` their mean); any previous ones are replaced."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["q_hat"] = np.asarray(q_hat, np.float64)
        values["q_replicates"] = replicates
        return SequentialInput(**values)

    @property
    def n(self) -> int:
        """Number of episodes (the unit the bootstrap resamples)."""
        return int(self.valid.shape[0])

    @property
    def n_decisions(self) -> int:
        return int(self.valid.sum())

    @property
    def horizon(self) -> int:
        return int(self.valid.shape[1])

    @property
    def n_actions(self) -> int:
        return int(self.target_probs.shape[2])

    @cached_property
    def lengths(self) -> np.ndarray:
        lengths: np.ndarray = self.valid.sum(axis=1)
        return lengths

    @cached_property
    def discounts(self) -> np.ndarray:
        """gamma ** t for t = 0 .. T-1."""
        return self.gamma ** np.arange(self.horizon, dtype=np.float64)

    @cached_property
    def ratios(self) -> np.ndarray:
        """Per-step ratios pi(a_t|s_t) / mu(a_t|s_t); 1 on padding (absorbing state)."""
        e, t = np.indices(self.valid.shape)
        taken = self.target_probs[e, t, self.actions]
        return np.where(self.valid, taken / self.propensities, 1.0)

    @cached_property
    def unclipped_weights(self) -> np.ndarray:
        """prod_{k <= t} ratio_k, constant after the end of each episode."""
        return np.cumprod(self.ratios, axis=1)

    @cached_property
    def cumulative_weights(self) -> np.ndarray:
        """w_t = min(prod_{k <= t} ratio_k, weight_clip) (no cap when ``weight_clip`` is None).

        Per-decision weight clipping (truncated importance sampling, Ionides 2008) trades
        variance for a bias toward the logged behaviour; every weight-based estimator and the
        diagnostics use the clipped weights, and the estimates say when clipping happened.
        """
        w = self.unclipped_weights
        return w if self.weight_clip is None else np.minimum(w, self.weight_clip)

    @cached_property
    def clipped_share(self) -> float:
        """Share of the logged decisions whose cumulative weight the clip lowered."""
        if self.weight_clip is None:
            return 0.0
        return float(np.mean(self.unclipped_weights[self.valid] > self.weight_clip))

    @cached_property
    def previous_weights(self) -> np.ndarray:
        """w_{t-1}, with w_{-1} = 1."""
        w = self.cumulative_weights
        return np.concatenate((np.ones((self.n, 1)), w[:, :-1]), axis=1)

    @property
    def final_weights(self) -> np.ndarray:
        """The whole-episode importance weight of each episode."""
        return self.cumulative_weights[:, -1]

    @cached_property
    def v_hat(self) -> np.ndarray:
        """V(s_t) = sum_a pi(a|s_t) Q(s_t, a) over possible actions; 0 on padding."""
        if self.q_hat is None:
            raise ValueError("q_hat: this estimator needs a Q-model's predictions (e.g. FQE)")
        terms = np.where(self.possible_mask, self.target_probs * self.q_hat, 0.0)
        return np.where(self.valid, terms.sum(axis=2), 0.0)

    @cached_property
    def q_hat_taken(self) -> np.ndarray:
        """Q(s_t, a_t) of the logged action; 0 on padding."""
        if self.q_hat is None:
            raise ValueError("q_hat: this estimator needs a Q-model's predictions (e.g. FQE)")
        e, t = np.indices(self.valid.shape)
        return np.where(self.valid, self.q_hat[e, t, self.actions], 0.0)

    @cached_property
    def discounted_returns(self) -> np.ndarray:
        """sum_t gamma^t r_t of each episode as logged."""
        returns: np.ndarray = (np.where(self.valid, self.rewards, 0.0) * self.discounts).sum(axis=1)
        return returns
