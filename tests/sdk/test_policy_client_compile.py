"""The client's specialized TorchScript paths compute exactly what the served module does."""

from __future__ import annotations

import random
import warnings

import pytest
import torch

from learner.preprocessing.normalizer import FeatureSpec, Normalizer
from learner.serving import export_policy
from learner.trainers.config import ExplorationSettings
from learner.trainers.networks import MLP, UniformLogits
from learner.trainers.policy import PolicyModule, StochasticPolicy
from services.registry import load_policy
from services.sdk.policy_compile import compile_for_mask, compile_served

ACTIONS = ["a", "b", "c"]
SPECS = [
    FeatureSpec("ident", "identity", 0.0),
    FeatureSpec("flag", "binary", 1.0),
    FeatureSpec("share", "probability", 0.5),
    FeatureSpec("speed", "continuous", 0.0, mean=3.0, std=2.0),
    FeatureSpec("size", "boxcox", 1.0, mean=0.2, std=0.7, lam=0.3, shift=0.5),
    FeatureSpec("rank", "quantile", 2.0, boundaries=(0.0, 1.0, 5.0, 9.0),
                targets=(0.0, 0.3, 0.8, 1.0)),
    FeatureSpec("kind", "enum", 1.0, values=(0.0, 1.0, 2.0)),
]  # fmt: skip


def _served(specs, exploration):
    normalizer = Normalizer(specs=list(specs))
    names = normalizer.feature_names
    torch.manual_seed(5)
    q = MLP(normalizer.out_features, len(ACTIONS), [16])
    module = PolicyModule(normalizer.as_module(), q, UniformLogits(len(ACTIONS)), 0.0, exploration)
    blob = export_policy(StochasticPolicy(module, names, ACTIONS), normalizer, names, ACTIONS)
    return load_policy(blob), names


def _random_states(names, n=200, seed=0):
    rng = random.Random(seed)
    states = []
    for _ in range(n):
        state = {}
        for name in names:
            if rng.random() < 0.2:
                continue  # missing: the default applies
            state[name] = rng.choice([rng.gauss(0, 3), float(rng.randint(0, 2)), rng.random()])
        states.append(state)
    return states


@pytest.mark.parametrize(
    "specs",
    [SPECS, [FeatureSpec(s.name, "identity", 0.0) for s in SPECS[:4]]],
    ids=["every-kind", "identity-only"],
)
@pytest.mark.parametrize("epsilon", [0.0, 0.2])
def test_the_specialized_forward_equals_the_module_on_every_mask(specs, epsilon):
    module, names = _served(specs, ExplorationSettings(temperature=0.7, epsilon=epsilon,
                                                       min_propensity=0.01))  # fmt: skip
    fast, how = compile_served(module, names, len(ACTIONS))
    assert how == "specialized"
    masks = [[True, True, True], [True, False, True], [False, True, False]]
    for state in _random_states(names):
        row = torch.tensor([[state.get(n, float("nan")) for n in names]], dtype=torch.float32)
        for mask in masks:
            want = module(state, mask)
            got = fast(row, torch.tensor([mask]))[0].tolist()
            assert got == pytest.approx(want, abs=1e-6)


def test_the_all_actions_forward_equals_the_module():
    module, names = _served(SPECS, ExplorationSettings(temperature=0.5, epsilon=0.1,
                                                       min_propensity=0.02))  # fmt: skip
    bound = compile_for_mask(module, names, [True, True, True])
    assert bound is not None
    for state in _random_states(names, seed=1):
        row = torch.tensor([[state.get(n, float("nan")) for n in names]], dtype=torch.float32)
        assert bound(row)[0].tolist() == pytest.approx(module(state, [True] * 3), abs=1e-6)


def test_a_module_without_the_served_interface_is_served_as_it_is():
    class NotServed(torch.nn.Module):
        @torch.jit.export
        def probs_dense(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return mask.to(torch.float32) / mask.sum()

        def forward(self, state: dict[str, float], possible: list[bool]) -> list[float]:
            return [1.0 / len(possible)] * len(possible)  # disagrees with probs_dense

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is policy.pt's format
        module = torch.jit.script(NotServed())
    _, how = compile_served(module, ["x"], 2)
    assert how == "original"
