"""Registry versions made quickly for tests: real served policies, real registry publication.

The policies are built from the learner's own pieces (identity normalizer, MLP, exploration) and
exported through :func:`learner.serving.export_policy`, so a test exercises exactly the
``policy.pt`` the learner publishes, without training anything. ``logits`` fixes the action
preference (a constant network), or ``seed`` draws a small random MLP whose probabilities depend
on the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from learner.preprocessing.normalizer import FeatureSpec, Normalizer
from learner.serving import export_policy
from learner.trainers.config import ExplorationSettings
from learner.trainers.networks import MLP, UniformLogits
from learner.trainers.policy import PolicyModule, StochasticPolicy
from services.registry import Registry

__all__ = ["CARTPOLE_ACTIONS", "CARTPOLE_FEATURES", "manifest_for", "policy_bytes", "publish"]

CARTPOLE_FEATURES = ["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"]
CARTPOLE_ACTIONS = ["0", "1"]


def policy_bytes(
    feature_names: Sequence[str] = CARTPOLE_FEATURES,
    actions: Sequence[str] = CARTPOLE_ACTIONS,
    *,
    logits: Sequence[float] | None = None,
    seed: int = 0,
    hidden_sizes: Sequence[int] = (16,),
    temperature: float = 1.0,
    epsilon: float = 0.0,
    min_propensity: float = 0.0,
) -> bytes:
    """TorchScript bytes of a served policy over ``feature_names`` → ``actions``.

    With ``logits`` the Q-network ignores the state and returns them (probabilities are
    ``softmax(logits / temperature)`` mixed with the exploration floor); otherwise a random MLP
    seeded by ``seed``.
    """
    features, acts = list(feature_names), [str(a) for a in actions]
    normalizer = Normalizer(specs=[FeatureSpec(name, "identity", 0.0) for name in features])
    torch.manual_seed(seed)
    q_network = MLP(len(features), len(acts), list(hidden_sizes))
    if logits is not None:
        if len(logits) != len(acts):
            raise ValueError(f"logits: need one per action ({len(acts)}), got {len(logits)}")
        with torch.no_grad():
            last = q_network.net[-1]
            for layer in q_network.net:
                if isinstance(layer, torch.nn.Linear) and layer is not last:
                    layer.weight.zero_()
                    layer.bias.zero_()
            last.weight.zero_()
            last.bias.copy_(torch.tensor(list(logits), dtype=torch.float32))
    exploration = ExplorationSettings(
        temperature=temperature, epsilon=epsilon, min_propensity=min_propensity
    )
    module = PolicyModule(
        normalizer.as_module(), q_network, UniformLogits(len(acts)), 0.0, exploration
    )
    policy = StochasticPolicy(module, features, acts)
    return export_policy(policy, normalizer, features, acts)


def manifest_for(
    feature_names: Sequence[str] = CARTPOLE_FEATURES,
    actions: Sequence[str] = CARTPOLE_ACTIONS,
    **overrides: Any,
) -> dict[str, Any]:
    """A complete caller-side manifest (the registry stamps version, sha256, created_at)."""
    normalizer = Normalizer(specs=[FeatureSpec(name, "identity", 0.0) for name in feature_names])
    manifest: dict[str, Any] = {
        "feature_names": list(feature_names),
        "normalization": normalizer.to_manifest(),
        "actions": [str(a) for a in actions],
        "exploration": {"temperature": 1.0, "epsilon": 0.0, "min_propensity": 0.0},
        "algorithm": "test-factory",
        "trained_on": {"table_uri": "memory://factory", "table_version": 0, "rows": 0,
                       "episodes": 0},
        "cpe": {},
        "gate": {"decision": "publish", "reasons": ["made by tests.rollout.factory"]},
    }  # fmt: skip
    manifest.update(overrides)
    return manifest


def publish(
    registry: Registry,
    *,
    promote: bool = False,
    feature_names: Sequence[str] = CARTPOLE_FEATURES,
    actions: Sequence[str] = CARTPOLE_ACTIONS,
    **policy_options: Any,
) -> str:
    """Publish a :func:`policy_bytes` policy in ``registry``; returns its version name."""
    blob = policy_bytes(feature_names, actions, **policy_options)
    return registry.publish(blob, manifest_for(feature_names, actions), promote=promote)
