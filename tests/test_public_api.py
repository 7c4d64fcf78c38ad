"""The public surface: every exported name imports, every module declares ``__all__``."""

from __future__ import annotations

import importlib
import pkgutil

import ephys_eqprop.models
import pytest

import ephys_eqprop


def all_modules():
    """Every module of the package, ``ephys_eqprop.models`` (shipped from ``models/``) included."""
    names = {"ephys_eqprop", "ephys_eqprop.models"}
    for pkg in (ephys_eqprop, ephys_eqprop.models):
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            names.add(info.name)
    return sorted(names)


@pytest.mark.parametrize("module", ["ephys_eqprop", "ephys_eqprop.models", "ephys_eqprop.losses"])
def test_every_exported_name_imports(module):
    mod = importlib.import_module(module)
    assert mod.__all__, f"{module}.__all__ is empty"
    assert len(set(mod.__all__)) == len(mod.__all__), f"duplicates in {module}.__all__"
    for name in mod.__all__:
        # `from module import name` must work, as a user would write it
        namespace: dict = {}
        exec(f"from {module} import {name}", namespace)
        assert namespace[name] is getattr(mod, name)


def test_module_list_covers_the_core():
    found = set(all_modules())
    for expected in ("ephys_eqprop.circuit", "ephys_eqprop.network", "ephys_eqprop.losses",
                     "ephys_eqprop.phases", "ephys_eqprop.estimators",
                     "ephys_eqprop.steady_state", "ephys_eqprop.elements.base",
                     "ephys_eqprop.models.diode", "ephys_eqprop.models.nodes"):
        assert expected in found


@pytest.mark.parametrize("module", all_modules())
def test_every_module_defines_all(module):
    mod = importlib.import_module(module)
    assert isinstance(getattr(mod, "__all__", None), (list, tuple)), f"{module} has no __all__"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ lists names it does not define: {missing}"


def test_version():
    assert isinstance(ephys_eqprop.__version__, str) and ephys_eqprop.__version__
