"""Package exports imported on first use (PEP 562), so that light imports stay light.

``services.settings`` composes every part's config section, and importing a config module runs
its package's ``__init__``; if that ``__init__`` eagerly imported torch or kafka-python, every
CLI command (even ``policyloop broker status``) would pay seconds for it. A package declares
``name -> module`` and this module supplies its ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` exporting each name from its module."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
