"""``policyloop demo``: the closed loop (log, sessionize, learn, gate, roll out) on one machine."""

from services.demo.loop import DemoResult, RoundResult, TrafficBatch, run_demo
from services.demo.settings import DemoSettings, demo_settings

__all__ = ["DemoResult", "DemoSettings", "RoundResult", "TrafficBatch", "demo_settings", "run_demo"]
