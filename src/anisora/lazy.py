"""Package exports that import their module on first use, so `import anisora.X` (and `anisora --help`) stays
cheap: a package's `__init__` lists {name: submodule} and takes `__getattr__` from `lazy_exports`."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module-level `__getattr__` of `package` that imports `exports[name]` (a submodule) on first use."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{exports[name]}", package), name)

    return __getattr__
