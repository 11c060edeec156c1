"""A module imported on first use, not at `import plugin`.

faiss (and torch, which `plugin/__init__.py` defers with PEP 562) cost seconds to import and most users of the
HTTP or LangChain layer never build an index in the importing process before they serve; the proxy keeps
`import plugin` quick and imports the real module, once, the first time an attribute is read.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Stands in for module `name`; `on_load(module)` runs once, before the first attribute is handed out."""

    def __init__(self, name: str, on_load: Callable[[ModuleType], None] | None = None) -> None:
        self._name = name
        self._on_load = on_load
        self._module: ModuleType | None = None
        self._lock = threading.Lock()

    def _load(self) -> ModuleType:
        with self._lock:  # two first uses in two threads must not both run on_load half-way
            if self._module is None:
                module = importlib.import_module(self._name)
                if self._on_load is not None:
                    self._on_load(module)
                self._module = module
        return self._module

    def __getattr__(self, attr: str) -> Any:
        module = self._module if self._module is not None else self._load()
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not yet imported"
        return f"<lazy module {self._name!r} ({state})>"
