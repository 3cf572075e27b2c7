"""The built-in model catalogue is exactly the modules listed in ``CATALOGUE_MODULES``: a module that defines
``TINY`` elsewhere is not picked up, and a module under ``nodes/`` that defines ``TINY`` or ``SHIPPED`` without
being listed fails here instead of silently missing from the catalogue."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import nodeforge.nodes.models as models
import nodeforge.nodes.models.tiny as tiny
from nodeforge.nodes.models import CATALOGUE_MODULES, build_resolver

NODES = Path(models.__file__).resolve().parents[1]
STRAY = "tiny_stray"


def defines_catalogue(path: Path) -> bool:
    """Whether a module assigns ``TINY`` or ``SHIPPED`` at its top level."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id in ("TINY", "SHIPPED") for target in targets):
            return True
    return False


def test_every_module_that_defines_tiny_or_shipped_is_listed_and_only_those() -> None:
    defining = {".".join(("nodeforge", *path.relative_to(NODES.parent).with_suffix("").parts))
                for path in NODES.rglob("*.py") if defines_catalogue(path)}
    assert defining == {f"{models.__name__}.{name}" for name in CATALOGUE_MODULES}
    assert len(set(CATALOGUE_MODULES)) == len(CATALOGUE_MODULES)


def test_the_listed_modules_make_the_catalogue() -> None:
    resolver = build_resolver()
    for name in CATALOGUE_MODULES:
        module = importlib.import_module(f"{models.__name__}.{name}")
        assert set(getattr(module, "TINY", {})) <= set(resolver.tiny), name
        assert set(getattr(module, "SHIPPED", {})) <= set(resolver.shipped), name


def test_a_module_outside_the_list_that_defines_tiny_is_not_picked_up(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{STRAY}.py").write_text(
        "from nodeforge.nodes.models import TinyModel\n\n"
        "TINY = {'stray': TinyModel(family='sd', build=lambda folder: None, description='not listed')}\n")
    monkeypatch.setattr(tiny, "__path__", [*tiny.__path__, str(tmp_path)])
    name = f"{tiny.__name__}.{STRAY}"
    try:
        stray = importlib.import_module(name)
        assert STRAY in {info.name for info in pkgutil.iter_modules(tiny.__path__)}  # a scan would find it
        assert "stray" in stray.TINY
        resolver = build_resolver()
    finally:
        sys.modules.pop(name, None)
    assert "stray" not in resolver.tiny and "sd" in resolver.tiny
