"""A feature repository on disk: its package of definitions, named in its `pyproject.toml`, loaded by path.

    [tool.feature_platform]
    package = "shop_features"     # FEATURE_PLATFORM_PACKAGE overrides; `assets` when neither says

The package exposes `feature_groups` and, if it has them, `feature_views`, `raw_sources`
and `training_datasets`. Each load imports the repository's own modules afresh, so two
repositories with the same module names in one process each get their own definitions.
"""

import importlib
import os
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from feature_platform.errors import DefinitionError

PACKAGE_VARIABLE = "FEATURE_PLATFORM_PACKAGE"
DEFAULT_PACKAGE = "assets"
# Never re-imported from a repository folder: the platform itself (a clone is a repository too) and pytest's.
SHARED_MODULES = frozenset({"feature_platform", "tests", "conftest"})


def package_name(repo: str | Path) -> str:
    """The repository's definitions package: `$FEATURE_PLATFORM_PACKAGE`, `[tool.feature_platform] package`, else `assets`."""
    if os.environ.get(PACKAGE_VARIABLE):
        return os.environ[PACKAGE_VARIABLE]
    pyproject = Path(repo) / "pyproject.toml"
    if not pyproject.is_file():
        return DEFAULT_PACKAGE
    try:
        config = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as error:
        raise DefinitionError(f"{pyproject} is not valid TOML: {error}") from None
    name = config.get("tool", {}).get("feature_platform", {}).get("package", DEFAULT_PACKAGE)
    if not isinstance(name, str) or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise DefinitionError(f"{pyproject}: [tool.feature_platform] package must be a Python package name, got {name!r}")
    return name


def _local_names(repo: Path) -> set[str]:
    """Top-level modules and packages that live directly in the repository folder."""
    names = {p.stem for p in repo.glob("*.py")} | {p.parent.name for p in repo.glob("*/__init__.py")}
    return {n for n in names if n not in SHARED_MODULES and n not in sys.stdlib_module_names}


def load_module(repo: str | Path, name: str) -> ModuleType:
    """Import module `name` of the repository at `repo`, afresh: no module of another repository (or an earlier load) is reused."""
    root = Path(repo).resolve()
    if not root.is_dir():
        raise DefinitionError(f"feature repository {root} is not a folder")
    local = _local_names(root)
    for loaded in list(sys.modules):
        if loaded.split(".")[0] in local:
            del sys.modules[loaded]
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    if name.split(".")[0] not in local:
        raise DefinitionError(
            f"feature repository {root} has no module '{name}': create {root / name.split('.')[0]}/__init__.py, "
            f"or name the package in pyproject.toml ([tool.feature_platform] package = \"...\") or ${PACKAGE_VARIABLE}"
        )
    return importlib.import_module(name)


@dataclass(frozen=True)
class Repository:
    """The definitions of one feature repository, as its package declares them."""

    root: Path
    package: str
    feature_groups: Sequence[Any]
    feature_views: Sequence[Any]
    raw_sources: Sequence[Any]
    training_datasets: Sequence[Any]


def load_repository(repo: str | Path) -> Repository:
    """The definitions package of the repository at `repo`, loaded afresh from that folder."""
    root = Path(repo).resolve()
    name = package_name(root)
    module = load_module(root, name)
    if not hasattr(module, "feature_groups"):
        raise DefinitionError(
            f"package '{name}' of {root} has no `feature_groups`: expose feature_groups (and feature_views, "
            "raw_sources, training_datasets) in its __init__.py"
        )
    return Repository(
        root,
        name,
        list(module.feature_groups),
        list(getattr(module, "feature_views", [])),
        list(getattr(module, "raw_sources", [])),
        list(getattr(module, "training_datasets", [])),
    )
