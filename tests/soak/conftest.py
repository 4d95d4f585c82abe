"""Fixtures of the soak tests: the SDK tests' private broker behind a cuttable proxy."""

from tests.sdk.test_outage import proxied_broker  # noqa: F401 - a fixture, found by name
