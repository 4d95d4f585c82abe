"""The logging SDK: ``DecisionLogger`` sends decisions, rewards and episode ends to Kafka.

    from services.sdk import DecisionLogger

    with DecisionLogger("127.0.0.1:9092") as logger:
        logger.decision("ep-1", 0, {"x": 0.5}, "a", ["a", "b"], 0.7, "v1",
                        action_probs=[0.7, 0.3])
        logger.reward("ep-1", 0, 1.0)
        logger.end_episode("ep-1", terminal=True)

The names are imported on first use (PEP 562): the command line composes its settings from
``services.sdk.settings``, which runs this file, and every command (even ``policyloop broker
status``) would otherwise pay for importing kafka-python and prometheus-client. An application's
``from services.sdk import DecisionLogger`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CloseReport": "services.sdk.spool_losses",
    "DecisionLogger": "services.sdk.logger",
    "EventValidationError": "services.sdk.errors",
    "LoggerClosedError": "services.sdk.errors",
    "PolicyAct": "services.sdk.policy_client",
    "PolicyClient": "services.sdk.policy_client",
    "PolicyUnavailableError": "services.sdk.policy_serving",
    "QueueFullError": "services.sdk.errors",
    "SdkError": "services.sdk.errors",
    "SdkSettings": "services.sdk.settings",
    "ServingSnapshot": "services.sdk.policy_client",
    "SpoolFullError": "services.sdk.errors",
    "episode_bucket": "services.sdk.policy_routing",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(_WHERE)
