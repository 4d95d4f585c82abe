"""Exporting the trained policy as TorchScript (``policy.pt``).

Loading it back is :func:`services.registry.load_policy`: the registry owns the one loader.
"""

from learner.serving.export import EXTRA_FILE, ServedPolicy, export_policy

__all__ = ["EXTRA_FILE", "ServedPolicy", "export_policy"]
