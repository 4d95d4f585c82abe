"""Staged rollout: move a candidate from a few percent of episodes to CURRENT on evidence.

Names are imported on first use (``services.settings`` imports the settings module, and every
CLI command would otherwise pay for deltalake and the registry).
"""

from __future__ import annotations

from services.lazy_exports import lazy_exports

_WHERE = {
    "Comparison": "services.rollout.evidence",
    "RolloutController": "services.rollout.controller",
    "RolloutError": "services.rollout.plan",
    "RolloutPlan": "services.rollout.plan",
    "RolloutSettings": "services.rollout.settings",
    "RolloutStatus": "services.rollout.controller",
    "SideEvidence": "services.rollout.evidence",
    "TickResult": "services.rollout.controller",
    "compare_returns": "services.rollout.evidence",
    "episode_returns": "services.rollout.evidence",
    "parse_steps": "services.rollout.plan",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
