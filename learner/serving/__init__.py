"""Exporting the trained policy as TorchScript (``policy.pt``) and loading it back."""

from learner.serving.export import EXTRA_FILE, ServedPolicy, export_policy, load_policy

__all__ = ["EXTRA_FILE", "ServedPolicy", "export_policy", "load_policy"]
