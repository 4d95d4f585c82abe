"""Let aiokafka read LZ4-compressed batches with the ``lz4`` package when cramjam is missing.

Why: the SDK compresses with LZ4 (kafka-python uses the ``lz4`` package, a declared
dependency), but aiokafka ≥ 0.11 decodes LZ4 only through ``cramjam``, which is not. Kafka's
LZ4 codec is the standard LZ4 frame format, so ``lz4.frame`` reads it. With cramjam installed
this does nothing.
"""

from __future__ import annotations

__all__ = ["ensure_lz4_decoding"]


def ensure_lz4_decoding() -> bool:
    """Make aiokafka able to decode LZ4; returns True if it patched anything."""
    import aiokafka.codec as codec

    if codec.has_lz4():
        return False
    import lz4.frame

    def lz4_decode(payload) -> bytes:
        return lz4.frame.decompress(bytes(payload))

    def lz4_encode(payload, level: int = 9) -> bytes:
        return lz4.frame.compress(bytes(payload), compression_level=level)

    codec.has_lz4 = lambda: True
    codec.lz4_decode = lz4_decode
    codec.lz4_encode = lz4_encode
    for name in (
        "aiokafka.record._crecords.default_records",
        "aiokafka.record._crecords.legacy_records",
        "aiokafka.record.default_records",
        "aiokafka.record.legacy_records",
    ):
        try:
            module = __import__(name, fromlist=["_"])
        except ImportError:
            continue
        for attr, fn in (("lz4_decode", lz4_decode), ("lz4_encode", lz4_encode)):
            if hasattr(module, attr):
                try:
                    setattr(module, attr, fn)
                except (AttributeError, TypeError):
                    pass
    return True
