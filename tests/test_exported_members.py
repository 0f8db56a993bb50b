"""The public surface does not drift silently: every module declares ``__all__`` and exports
exactly what it defines (after httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

PACKAGES = ("schemas", "processors", "consumers")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(module.__path__)]
    return names


@pytest.mark.parametrize("name", _modules())
def test_module_declares_all_and_exports_only_defined_names(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names undefined members {missing}"
    assert len(set(module.__all__)) == len(module.__all__)


def test_processors_do_not_import_consumers():
    """The layer rule: schemas <- processors <- consumers."""
    for name in _modules():
        importlib.import_module(name)
    for name, module in list(sys.modules.items()):
        if name.startswith(("processors", "schemas")) and module is not None:
            source = getattr(module, "__file__", "") or ""
            if source.endswith(".py"):
                text = Path(source).read_text(encoding="utf-8")
                assert "from consumers" not in text, name
                assert "import consumers" not in text, name
                if name.startswith("schemas"):
                    assert "from processors" not in text, name
