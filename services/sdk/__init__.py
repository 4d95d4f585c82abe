"""The logging SDK: ``DecisionLogger`` sends decisions, rewards and episode ends to Kafka.

    from services.sdk import DecisionLogger

    with DecisionLogger("127.0.0.1:9092") as logger:
        logger.decision("ep-1", 0, {"x": 0.5}, "a", ["a", "b"], 0.7, "v1",
                        action_probs=[0.7, 0.3])
        logger.reward("ep-1", 0, 1.0)
        logger.end_episode("ep-1", terminal=True)

The names are imported on first use: ``services.settings`` imports ``services.sdk.settings``,
and every CLI command would otherwise pay for importing kafka-python and prometheus-client.
"""

from __future__ import annotations

from services.lazy_exports import lazy_exports

_WHERE = {
    "DecisionLogger": "services.sdk.logger",
    "EventValidationError": "services.sdk.errors",
    "LoggerClosedError": "services.sdk.errors",
    "PolicyAct": "services.sdk.policy_client",
    "PolicyClient": "services.sdk.policy_client",
    "PolicyUnavailableError": "services.sdk.policy_client",
    "QueueFullError": "services.sdk.errors",
    "SdkError": "services.sdk.errors",
    "SdkSettings": "services.sdk.settings",
    "ServingSnapshot": "services.sdk.policy_client",
    "SpoolFullError": "services.sdk.errors",
    "episode_bucket": "services.sdk.policy_routing",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
