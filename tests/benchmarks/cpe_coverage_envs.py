"""The coverage benchmark's environments: where the uniform logs and the true values come from.

One record per environment with the two things the benchmark asks of it, so that the loop
does not care whether the truth is simulated or solved:

* ``logs(episodes, seed)``: uniform-logger data as the learner reads it;
* ``true_value(policy, data, ...)``: the policy's discounted value as served;
* ``untruncated_value(...)``: the same without the time limit, where it matters (a diagnostic).

``CartPole-v1`` and ``Taxi-v4`` (gymnasium 1.4.0 registers Taxi-v4, not the issue's Taxi-v3:
the same task, 500 discrete states one-hot encoded by the fleet's adapter, 6 actions narrowed
by its ``action_mask``, 200-step episodes) are logged by the fleet
(:mod:`tests.benchmarks.cpe_coverage_logs`). CartPole's values are measured by simulation;
Taxi publishes its model, so its values are solved exactly by backward induction up to the time
limit (:mod:`tests.benchmarks.cpe_coverage_exact`), with no Monte Carlo error for a miss to hide
in. The river chain of :mod:`tests.learner.cpe.chain_mdp` is logged by its own sampler and
solved exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from learner.data import LoggedData
from tests.benchmarks.cpe_coverage_exact import TabularModel, tabular_model
from tests.benchmarks.cpe_coverage_logs import uniform_logs
from tests.benchmarks.cpe_coverage_policies import PolicyProbs, Uniform
from tests.benchmarks.cpe_coverage_truth import ServedSimulator, TrueValue, chain_value
from tests.learner.cpe.chain_mdp import RiverChain

__all__ = ["ENVIRONMENTS", "BenchEnvironment", "ChainEnvironment", "GymEnvironment"]


class BenchEnvironment(Protocol):
    """What the coverage loop needs of an environment (module doc)."""

    @property
    def name(self) -> str: ...

    @property
    def default_episodes(self) -> int: ...

    @property
    def relative_cost(self) -> float: ...

    def logs(self, episodes: int, seed: int) -> LoggedData: ...

    def true_value(
        self, policy: PolicyProbs, data: LoggedData, *, gamma: float, episodes: int, seed: int
    ) -> TrueValue: ...

    def logged_value(self, data: LoggedData, *, gamma: float, episodes: int) -> TrueValue: ...

    def untruncated_value(
        self, policy: PolicyProbs, data: LoggedData, *, gamma: float, episodes: int, seed: int
    ) -> TrueValue | None: ...


@dataclass
class GymEnvironment:
    """A gymnasium id, logged by the fleet's uniform policy; values solved exactly where the
    environment publishes its model (:func:`tabular_model`), measured by simulation otherwise.

    The uniform logger's true value does not depend on the data seed: it is measured once
    (with 4x the candidates' episodes, as every pair's baseline) and kept.

    ``untruncated_steps``: where the time limit cuts most logged episodes (Taxi's 200 steps),
    the value without that cut (played up to this many steps, gamma^steps negligible) is
    measured too, as a diagnostic: FQE estimated this value before it learned to detect a
    time limit in the logs (``learner.cpe.horizon``); the tables show both so that a miss by
    the time limit is told apart from an estimator's.
    """

    name: str
    default_episodes: int
    untruncated_steps: int | None = None
    #: one seed's wall time relative to the chain's (measured), so the longest units start first
    relative_cost: float = 1.0
    _logged: dict[float, TrueValue] = field(default_factory=dict, repr=False)
    _simulators: dict[int | None, ServedSimulator] = field(default_factory=dict, repr=False)

    @cached_property
    def model(self) -> TabularModel | None:
        """The published model (each value asks it for its horizon), None if it has none."""
        return tabular_model(self.name)

    def _value(
        self,
        policy: PolicyProbs,
        data: LoggedData,
        *,
        gamma: float,
        episodes: int,
        seed: int,
        max_steps: int | None = None,
    ) -> TrueValue:
        """Exact where there is a model, else ``episodes`` played from ``seed``."""
        model = self.model
        if model is not None:
            return model.true_value(
                policy, data.feature_names, data.actions_space, gamma=gamma, horizon=max_steps
            )
        return self.simulator(max_steps).value(
            policy,
            data.feature_names,
            data.actions_space,
            episodes=episodes,
            gamma=gamma,
            seed=seed,
        )

    def simulator(self, max_steps: int | None = None) -> ServedSimulator:
        """The simulator under the registered time limit (None), or ``max_steps``."""
        if max_steps not in self._simulators:
            kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}
            self._simulators[max_steps] = ServedSimulator(self.name, kwargs)
        return self._simulators[max_steps]

    def logs(self, episodes: int, seed: int) -> LoggedData:
        return uniform_logs(self.name, episodes, seed)

    def true_value(
        self, policy: PolicyProbs, data: LoggedData, *, gamma: float, episodes: int, seed: int
    ) -> TrueValue:
        return self._value(
            policy, data, gamma=gamma, episodes=episodes, seed=20_000_000 + seed * 100_003
        )

    def logged_value(self, data: LoggedData, *, gamma: float, episodes: int) -> TrueValue:
        if gamma not in self._logged:
            self._logged[gamma] = self._value(
                Uniform(), data, gamma=gamma, episodes=4 * episodes, seed=30_000_000
            )
        return self._logged[gamma]

    def untruncated_value(
        self, policy: PolicyProbs, data: LoggedData, *, gamma: float, episodes: int, seed: int
    ) -> TrueValue | None:
        if self.untruncated_steps is None:
            return None
        return self._value(
            policy,
            data,
            gamma=gamma,
            episodes=episodes,
            seed=20_000_000 + seed * 100_003,
            max_steps=self.untruncated_steps,
        )


@dataclass(frozen=True)
class ChainEnvironment:
    """The river chain (six one-hot states, two actions) logged by a uniform policy; every
    value solved exactly."""

    chain: RiverChain = field(default_factory=RiverChain.make)
    name: str = "chain"
    default_episodes: int = 1000
    relative_cost: float = 1.0

    def logs(self, episodes: int, seed: int) -> LoggedData:
        data, _states = self.chain.logged(episodes, seed=5_000 + seed)
        return data

    def true_value(
        self, policy: PolicyProbs, data: LoggedData, *, gamma: float, episodes: int, seed: int
    ) -> TrueValue:
        return chain_value(self.chain, policy, gamma)

    def logged_value(self, data: LoggedData, *, gamma: float, episodes: int) -> TrueValue:
        return TrueValue(self.chain.value(self.chain.logger, gamma), 0.0, 0, exact=True)

    def untruncated_value(
        self, policy: PolicyProbs, data: LoggedData, *, gamma: float, episodes: int, seed: int
    ) -> TrueValue | None:
        return None  # the chain's episodes end by chance, never by a time limit


def _environments() -> dict[str, BenchEnvironment]:
    return {
        "chain": ChainEnvironment(),
        # 2,000 uniform episodes: the CartPole data size (~44,000 decisions)
        "CartPole-v1": GymEnvironment("CartPole-v1", 2000, relative_cost=1.1),
        # 200-step episodes: 500 of them are ~90,000 decisions of 500 one-hot features
        "Taxi-v4": GymEnvironment("Taxi-v4", 500, untruncated_steps=1000, relative_cost=5.0),
    }


#: By name, in the order they run and print.
ENVIRONMENTS: dict[str, BenchEnvironment] = _environments()
