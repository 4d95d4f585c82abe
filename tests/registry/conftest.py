"""Fixtures of the registry tests (the tiny policy lives in ``tiny_policy``)."""

from __future__ import annotations

import pytest

from tests.registry.tiny_policy import policy_bytes


@pytest.fixture(scope="session")
def tiny_bytes() -> bytes:
    return policy_bytes(0.0)


@pytest.fixture(scope="session")
def other_bytes() -> bytes:
    return policy_bytes(2.0)
