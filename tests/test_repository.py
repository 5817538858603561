"""A feature repository's package is configuration, and each repository loads by path, apart from the others."""

import textwrap
from pathlib import Path

import pytest

from feature_platform import DefinitionError, FeatureStore
from feature_platform.cli import main
from feature_platform.definitions.repository import package_name
from feature_platform.orchestration.backfill import load_definitions

PACKAGE = """
from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup

user = Entity("user", join_keys={{"user_id": "int64"}})
feature_groups = [FeatureGroup("{group}", entities=[user], features=[Feature("total", "float64")],
                               partitions=DailyPartitions(start="2024-05-01"))]
"""

DEFINITIONS = """
import dagster as dg
from {package} import feature_groups

defs = dg.Definitions(assets=[dg.AssetSpec(["features", g.name]) for g in feature_groups])
"""


def write_repo(root: Path, group: str, *, package: str = "assets", configured: bool = True) -> Path:
    """A repository whose package `package` declares one group named `group`, with a definitions.py."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text(textwrap.dedent(PACKAGE.format(group=group)))
    (root / "definitions.py").write_text(textwrap.dedent(DEFINITIONS.format(package=package)))
    if configured:
        (root / "pyproject.toml").write_text(f'[project]\nname = "{root.name}"\n\n[tool.feature_platform]\npackage = "{package}"\n')
    return root


def test_two_repositories_with_the_same_package_name_each_load_their_own_definitions(tmp_path: Path) -> None:
    first = write_repo(tmp_path / "a", "orders_a")
    second = write_repo(tmp_path / "b", "orders_b")

    assert FeatureStore.from_repo(first).list_groups() == ["orders_a"]
    assert FeatureStore.from_repo(second).list_groups() == ["orders_b"]
    assert FeatureStore.from_repo(first).list_groups() == ["orders_a"]


def test_two_repositories_each_load_their_own_dagster_definitions(tmp_path: Path) -> None:
    first = write_repo(tmp_path / "a", "orders_a")
    second = write_repo(tmp_path / "b", "orders_b")

    keys = [sorted(k.to_user_string() for k in load_definitions(r).resolve_asset_graph().get_all_asset_keys()) for r in (first, second)]

    assert keys == [["features/orders_a"], ["features/orders_b"]]


def test_the_package_is_the_one_named_in_pyproject(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "shop", "orders", package="shop_features")

    assert package_name(repo) == "shop_features"
    assert FeatureStore.from_repo(repo).list_groups() == ["orders"]


def test_the_environment_variable_overrides_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write_repo(tmp_path / "shop", "orders", package="shop_features")
    write_repo(tmp_path / "other", "other_orders", package="other_features", configured=False)
    (tmp_path / "other" / "other_features").rename(repo / "other_features")
    monkeypatch.setenv("FEATURE_PLATFORM_PACKAGE", "other_features")

    assert FeatureStore.from_repo(repo).list_groups() == ["other_orders"]


def test_a_repository_without_its_package_is_a_definition_error_saying_how_to_name_it(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    (repo / "pyproject.toml").write_text('[tool.feature_platform]\npackage = "shop_features"\n')

    with pytest.raises(DefinitionError, match=r"no module 'shop_features'.*\[tool.feature_platform\] package"):
        FeatureStore.from_repo(repo)


def test_the_cli_lists_a_repository_with_its_own_package_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = write_repo(tmp_path / "shop", "orders", package="shop_features")

    assert main(["list", "--repo", str(repo)]) == 0
    assert "orders" in capsys.readouterr().out


def test_the_cli_names_a_missing_package_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.feature_platform]\npackage = "shop_features"\n')

    assert main(["list", "--repo", str(tmp_path)]) == 2
    assert "has no module 'shop_features'" in capsys.readouterr().err


def test_a_package_name_that_is_not_an_identifier_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.feature_platform]\npackage = "shop-features"\n')

    with pytest.raises(DefinitionError, match="must be a Python package name"):
        package_name(tmp_path)
