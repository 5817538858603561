"""The production instance config: PostgreSQL storage selected by the environment, used by a real run."""

import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy

from tests.ops_fixtures import land, landing_defs

POSTGRES_URL = "postgresql://root@127.0.0.1:5432/test"
CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "dagster.postgres.yaml"


def postgres_problem() -> str | None:
    """None when the server answers, else why not (shown as the skip reason)."""
    try:
        with sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2}).connect():
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@pytest.mark.postgres
@pytest.mark.skipif(postgres_problem() is not None, reason=f"no PostgreSQL at {POSTGRES_URL}: {postgres_problem()}")
def test_a_partition_materializes_on_the_postgres_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", POSTGRES_URL)
    monkeypatch.setenv("DAGSTER_MAX_CONCURRENT_RUNS", "4")
    land(tmp_path / "raw", "2024-05-03", [1, 2])
    defs, _ = landing_defs(tmp_path)
    asset = defs.resolve_assets_def(dg.AssetKey(["features", "daily_clicks"]))
    marker = uuid.uuid4().hex
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([asset], partition_key="2024-05-03", instance=instance, tags={"test_marker": marker})
        assert result.success
    with dg.DagsterInstance.from_config(str(home)) as reopened:  # what the webserver and daemon would read
        runs = reopened.get_runs(filters=dg.RunsFilter(tags={"test_marker": marker}))
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        event = reopened.get_latest_materialization_event(dg.AssetKey(["features", "daily_clicks"]))
        assert event is not None and event.run_id == runs[0].run_id
        assert event.asset_materialization.partition == "2024-05-03"
