"""What a training run hands to CPE, the gate and the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from learner.trainers.policy import StochasticPolicy

__all__ = ["TrainResult"]


@dataclass
class TrainResult:
    """``q_network`` maps normalized states to action values (bandit: predicted rewards);
    ``policy`` is what would be served; ``history`` has one entry per ``log_every`` steps;
    ``samples_per_s`` counts the rows of every ensemble member's mini-batches."""

    q_network: nn.Module
    policy: StochasticPolicy
    history: list[dict[str, float]]
    diverged: bool
    divergence_reason: str | None
    algorithm: str
    samples_per_s: float
    steps: int
    train_seconds: float
    warm_started: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able facts for the manifest and the report."""
        last = self.history[-1] if self.history else {}
        return {
            "algorithm": self.algorithm,
            "steps": self.steps,
            "samples_per_s": round(self.samples_per_s, 1),
            "train_seconds": round(self.train_seconds, 3),
            "diverged": self.diverged,
            "divergence_reason": self.divergence_reason,
            "warm_started": self.warm_started,
            "final_loss": last.get("loss"),
            "final_q_mean": last.get("q_mean"),
            "notes": list(self.notes),
        }
