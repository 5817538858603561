"""`feature-platform init DIR --package NAME` scaffolds a runnable feature repository under the team's package name."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from feature_platform import ArgumentError, FeatureStore
from feature_platform.cli import main
from feature_platform.scaffold import create_repository

PLATFORM = Path(__file__).resolve().parents[1]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    assert main(["init", str(tmp_path / "shop"), "--package", "shop_features"]) == 0
    return tmp_path / "shop"


def test_init_writes_the_package_definitions_workspace_instance_test_and_readme(shop: Path) -> None:
    files = sorted(str(p.relative_to(shop)) for p in shop.rglob("*") if p.is_file() and not p.match("data/orders/*.csv"))

    assert files == [".gitignore", "README.md", "dagster.yaml", "definitions.py", "pyproject.toml",
                     "shop_features/__init__.py", "shop_features/entities.py", "shop_features/groups.py",
                     "shop_features/sources.py", "shop_features/views.py", "tests/test_features.py", "workspace.yaml"]
    assert tomllib.loads((shop / "pyproject.toml").read_text())["tool"]["feature_platform"] == {"package": "shop_features"}
    assert "python -m pytest" in (shop / "README.md").read_text() and "dagster dev -w workspace.yaml" in (shop / "README.md").read_text()
    assert "location_name: shop_features" in (shop / "workspace.yaml").read_text()


def test_the_new_repository_loads_by_its_own_package_name(shop: Path) -> None:
    store = FeatureStore.from_repo(shop)

    assert (store.list_groups(), store.list_views(), sorted(store.sources)) == (["customer_orders"], ["customer_model"], ["orders"])


def test_the_new_repository_passes_its_own_test(shop: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{PLATFORM}{os.pathsep}{shop}"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=shop, env=env,
                          capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 passed" in done.stdout


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(ArgumentError, match="is not an empty folder"):
        create_repository(tmp_path, "shop_features")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(("name", "reason"), [("shop-features", "not a lower-case Python package name"), ("class", "not a lower-case"),
                                              ("json", "would shadow"), ("feature_platform", "would shadow")])
def test_init_refuses_a_package_name_that_cannot_work(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, reason: str) -> None:
    assert main(["init", str(tmp_path / "repo"), "--package", name]) == 2
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


def test_backfilling_a_raw_source_read_in_place_says_to_backfill_its_groups(shop: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{PLATFORM}{os.pathsep}{shop}", "FEATURE_PLATFORM_HOME": str(shop / ".fp"),
           "DAGSTER_HOME": str(shop)}
    command = [sys.executable, "-m", "feature_platform.cli", "backfill", "orders", "--start", "2024-05-01", "--end", "2024-05-01",
               "--workers", "0", "--repo", str(shop)]
    done = subprocess.run(command, cwd=shop, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "raw source(s) ['orders'] are read in place" in done.stderr and "backfill the feature groups that read them" in done.stderr
