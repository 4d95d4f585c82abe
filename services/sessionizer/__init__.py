"""The sessionizer: events from Kafka into the Delta ``timeline`` table, exactly once."""

from services.sessionizer.outputs import DeadLetter, Output
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from services.sessionizer.settings import SessionizerSettings

__all__ = ["DeadLetter", "Output", "PartitionSessionizer", "SessionConfig", "SessionizerSettings"]
