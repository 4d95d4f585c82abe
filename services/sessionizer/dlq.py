"""Dead-letter records for ``<prefix>.dlq``: the original bytes plus why and where from.

Record layout (a contract for whoever reads the DLQ):

* **value**: the original bytes: the whole record value when the record was rejected or held a
  single event; for one event of a batch, that event re-encoded alone in MessagePack;
* **key**: ``<source topic>:<partition>:<offset>`` so that the dead letters of one source
  record stay together;
* **headers** (UTF-8): ``reason`` (machine-readable: ``malformed``, ``too_large``,
  ``unsupported_schema_version``, ``invalid:<field>``, ``late``, ``duplicate_step``,
  ``duplicate_end``, ``after_episode_end``, ``orphan_reward``, ``state_limit:open_episodes``,
  ``state_limit:episode_events``, ``state_limit:event_ids``), ``detail`` (the rule in words,
  at most 1000 characters), ``source_topic``, ``source_partition``, ``source_offset``,
  ``event_index`` (position in a batch; empty for a whole record) and ``event_type``.

Dead letters are flushed before the Delta commit that covers their offsets, and offsets at or
below a recorded commit are never processed again, so each is sent once except when the worker
dies between that flush and the commit (then again on restart: at least once; deduplicate on
the key plus ``event_index``).
"""

from __future__ import annotations

from services.sessionizer.outputs import DeadLetter

__all__ = ["dlq_record"]

_DETAIL_MAX = 1000


def dlq_record(
    letter: DeadLetter, topic: str, partition: int
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """``(key, value, headers)`` of the dead-letter record for ``letter``."""
    headers = [
        ("reason", letter.reason.encode()),
        ("detail", letter.detail[:_DETAIL_MAX].encode("utf-8", "replace")),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(letter.offset).encode()),
        ("event_index", b"" if letter.index is None else str(letter.index).encode()),
        ("event_type", letter.event_type.encode()),
    ]
    key = f"{topic}:{partition}:{letter.offset}".encode()
    return key, letter.value, headers
