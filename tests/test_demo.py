"""`policyloop demo` runs the logging flow on embedded defaults and cleans up after itself."""

from __future__ import annotations

import pytest
from rich.console import Console

from services.broker.embedded import broker_status
from services.demo import run_demo
from services.settings import Settings


@pytest.mark.integration
def test_demo_delivers_every_event_once_and_stops_its_broker(tmp_path):
    settings = Settings(home=str(tmp_path / "home"))
    result = run_demo(settings, episodes=200, seed=3, console=Console(quiet=True))
    assert result.complete
    assert result.logged["episode_end"] == 200
    assert len(result.arrived_ids) == sum(result.logged.values())
    handle, _ = broker_status(tmp_path / "home" / "demo")
    assert handle is None
