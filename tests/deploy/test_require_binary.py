"""A missing monitoring binary skips on a developer's machine and fails under CI and make test."""

from __future__ import annotations

import shutil

import pytest

from tests.deploy.monitoring_stack import REQUIRE_MONITORING, require_binary

MISSING = "policyloop-no-such-binary"


@pytest.fixture
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Neither CI nor make test: the variables that require the binaries are unset."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(REQUIRE_MONITORING, raising=False)
    return monkeypatch


def _outcome(*names: str) -> str:
    """What ``require_binary`` does to the test: "failed", "skipped" or "returned".

    Caught here, because a skip raised inside ``pytest.raises(pytest.fail.Exception)`` would
    escape it and turn this very test into a silent skip.
    """
    try:
        require_binary(*names)
    except pytest.fail.Exception as exc:
        assert MISSING in str(exc)
        return "failed"
    except pytest.skip.Exception as exc:
        assert MISSING in str(exc) and "make apt-deps" in str(exc)
        return "skipped"
    return "returned"


def test_the_make_test_variable_is_policyloop_require_monitoring():
    assert REQUIRE_MONITORING == "POLICYLOOP_REQUIRE_MONITORING"


def test_a_missing_binary_fails_when_make_test_requires_monitoring(plain_environment):
    plain_environment.setenv(REQUIRE_MONITORING, "1")
    assert _outcome(MISSING) == "failed"


def test_a_missing_binary_fails_under_ci(plain_environment):
    plain_environment.setenv("CI", "true")
    assert _outcome(MISSING) == "failed"


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_a_missing_binary_skips_when_the_variable_says_no(plain_environment, value):
    plain_environment.setenv(REQUIRE_MONITORING, value)
    assert _outcome(MISSING) == "skipped"


def test_a_missing_binary_skips_outside_ci_and_make_test(plain_environment):
    assert _outcome(MISSING) == "skipped"


def test_the_first_installed_name_is_returned(plain_environment):
    plain_environment.setenv(REQUIRE_MONITORING, "1")
    assert require_binary(MISSING, "sh") == shutil.which("sh")
