"""Names every part agrees on: what a policy may be called, and the cold-start version.

They live here, once, because the learner's settings, the demo's settings, the registry, the
SDK's policy client, the rollout controller and the simulator all have to spell them the same
way: a policy name the learner accepts must be one the registry accepts, and the version the SDK
logs for its uniform fallback is the incumbent the rollout controller compares against.
"""

from __future__ import annotations

from typing import Final

__all__ = ["POLICY_NAME_PATTERN", "UNIFORM_VERSION"]

#: A policy name: 1-128 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.
#: It is a directory name in the registry and a Kafka message key, hence the narrow alphabet.
POLICY_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

#: The version name of the built-in uniform policy served (and logged) before any CURRENT.
#: Registry versions are ``v<N>``, so it can never collide with a published version.
UNIFORM_VERSION: Final = "uniform"
