"""Adopting the platform from a clone in a fresh virtualenv, as a data engineer whose company already runs Dagster would.

One venv, in two steps. First the base install (no extras): `import feature_platform`, a
retrieval and a training dataset, without Dagster. Then the company's Dagster, another 1.13
patch release, and the platform with `[dagster,postgres,embedded]` next to it: `init` a
repository with its own package name, feed a group from a PostgreSQL table and one from the
team's own asset, merge with the team's automation sensor, materialize, and read historical
and online features. pip's cache and the machine's wheel folders keep the installs short.
"""

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy

pytestmark = [pytest.mark.install, pytest.mark.slow]

PLATFORM = Path(__file__).resolve().parents[1]
COMPANY_DAGSTER = "1.13.26"  # the release the team runs: not the one the platform's own venv has
POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    done = subprocess.run(command, cwd=cwd, env={**clean_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout


def clean_env() -> dict[str, str]:
    """The environment without this checkout on the path or its homes: the venv must stand alone."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "DAGSTER_HOME", "FEATURE_PLATFORM_HOME", "FEATURE_PLATFORM_OFFLINE_ROOT",
            "FEATURE_PLATFORM_REDIS_URL", "FEATURE_PLATFORM_PROJECT", "FEATURE_PLATFORM_PACKAGE"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A fresh venv and a clone of this repository (its committed state)."""
    root = tmp_path_factory.mktemp("install")
    run(["git", "clone", "--quiet", "--depth", "1", f"file://{PLATFORM}", str(root / "clone")], cwd=root)
    run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(root / "venv")], cwd=root)
    python = root / "venv" / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", str(root / "clone")], cwd=root)
    yield {"root": root, "clone": root / "clone", "python": python, "bin": root / "venv" / "bin"}


def test_the_base_install_runs_a_retrieval_without_dagster(venv: dict[str, Path]) -> None:
    script = textwrap.dedent(
        """
        import importlib.util, json
        import pandas as pd
        import feature_platform as fp
        user = fp.Entity("user", join_keys={"user_id": "int64"})
        spend = fp.FeatureGroup("spend", entities=[user], features=[fp.Feature("total", "float64")],
                                partitions=fp.DailyPartitions(start="2024-05-01"))
        store = fp.FeatureStore([spend], [fp.FeatureView("model", features=["spend:total"])], offline_root="offline")
        store.apply()
        store.write_partition("spend", "2024-05-01", pd.DataFrame({"user_id": [1, 2], "event_time": pd.Timestamp("2024-05-01 12:00"), "total": [3.0, 4.0]}))
        entities = pd.DataFrame({"user_id": [2, 1, 3], "event_time": pd.Timestamp("2024-05-02")})
        store.create_training_dataset("model", entities, name="model_training")
        try:
            import feature_platform.orchestration
            extra = None
        except ImportError as error:
            extra = str(error)
        print(json.dumps({"total": store.get_historical_features(entities, "model")["total"].tolist(),
                          "training_rows": len(store.load_training_dataset("model_training")),
                          "dagster": importlib.util.find_spec("dagster") is not None, "orchestration": extra}))
        """
    )
    out = json.loads(run([str(venv["python"]), "-c", script], cwd=venv["root"]).splitlines()[-1])

    assert out["total"][:2] == [4.0, 3.0] and pd.isna(out["total"][2])
    assert out["training_rows"] == 3 and out["dagster"] is False
    assert "pip install 'feature-platform[dagster]'" in out["orchestration"]


ORDERS = """
import os
from datetime import datetime, timedelta

import pandas as pd

from feature_platform import AssetSource, DailyPartitions, Feature, FeatureGroup, FeatureView, SqlSource
from shop_features.entities import customer

DAYS = DailyPartitions(start="2024-05-01", end="2024-05-08")

shop_orders = SqlSource("shop_orders", url_env="SHOP_DATABASE_URL", table=os.environ["SHOP_ORDERS_TABLE"], time_column="ordered_at",
                   partitions=DAYS, owner="team:shop")
crm_customers = AssetSource("crm_customers", asset_key=["crm", "customers"])


def spend_2d(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    # Per day of the run (a backfill run covers several): spend over the day and the one before, known at the day's end.
    orders, days = inputs["shop_orders"], pd.date_range(start, end, freq="D", inclusive="left")
    frames = []
    for day in days:
        window = orders[(orders["ordered_at"] >= day - timedelta(days=1)) & (orders["ordered_at"] < day + timedelta(days=1))]
        per_customer = window.groupby("customer_id", as_index=False).agg(amount_sum_2d=("amount", "sum"))
        frames.append(per_customer.assign(event_time=day + timedelta(days=1) - timedelta(microseconds=1)))
    return pd.concat(frames, ignore_index=True)


customer_spend = FeatureGroup("customer_spend", entities=[customer], features=[Feature("amount_sum_2d", "float64")],
                              partitions=DAYS, lookback=timedelta(days=1), compute=spend_2d, sources=["shop_orders"])
customer_segment = FeatureGroup("customer_segment", entities=[customer], features=[Feature("segment", "string")], partitions=None,
                                compute="SELECT customer_id, segment, signed_up_at AS event_time FROM crm_customers",
                                sources=["crm_customers"])
shop_model = FeatureView("shop_model", features=["customer_spend:amount_sum_2d", "customer_segment:segment"])
"""

PACKAGE = """
from shop_features import groups, orders, sources, views

raw_sources = [sources.orders, orders.shop_orders, orders.crm_customers]
feature_groups = [groups.customer_orders, orders.customer_spend, orders.customer_segment]
feature_views = [views.customer_model, orders.shop_model]
"""

TEAM_DEFINITIONS = """
import dagster as dg
import pandas as pd

import shop_features
from feature_platform.orchestration import STORE_RESOURCE, FeatureStoreResource, build_definitions

EAGER = dg.AutomationCondition.eager()


@dg.asset(key=["crm", "customers"], group_name="crm", automation_condition=EAGER)
def customers() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2, 3], "segment": ["gold", "silver", "gold"],
                         "signed_up_at": pd.to_datetime(["2024-01-05", "2024-02-10", "2024-03-15"], utc=True)})


@dg.asset(key=["crm", "segment_report"], deps=[customers], group_name="crm", automation_condition=EAGER)
def segment_report() -> None:
    return None


defs = dg.Definitions.merge(
    dg.Definitions(  # the team's own code location, with its own automation sensor
        assets=[customers, segment_report],
        sensors=[dg.AutomationConditionSensorDefinition("crm_automation", target=dg.AssetSelection.groups("crm"))],
    ),
    build_definitions(shop_features.feature_groups, shop_features.feature_views, shop_features.raw_sources),
    dg.Definitions(resources={STORE_RESOURCE: FeatureStoreResource(home=".feature_platform")}),
)
"""


@pytest.fixture
def orders_table() -> Iterator[str]:
    """A uniquely named orders table in the local PostgreSQL: customers 1 and 2 order on 2024-05-01..03."""
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        engine.connect().close()
    except Exception as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {type(exc).__name__}")
    name = f"adoption_e2e_orders_{uuid.uuid4().hex[:10]}"
    stamps = pd.to_datetime(["2024-05-01 09:00", "2024-05-02 10:00", "2024-05-02 18:00", "2024-05-03 11:00", "2024-05-03 12:00"], utc=True)
    pd.DataFrame({"customer_id": [1, 1, 2, 1, 2], "amount": [5.0, 10.0, 20.0, 40.0, 80.0], "ordered_at": stamps}).to_sql(name, engine, index=False)
    yield name
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'DROP TABLE "{name}"'))
    engine.dispose()


@pytest.mark.postgres
def test_adopt_in_a_dagster_project_from_a_clone(venv: dict[str, Path], orders_table: str) -> None:
    python, bin_ = str(venv["python"]), venv["bin"]
    run([python, "-m", "pip", "install", "--quiet", f"dagster=={COMPANY_DAGSTER}", f"dagster-webserver=={COMPANY_DAGSTER}"], cwd=venv["root"])
    # The team keeps its Dagster pinned (as its requirements do); the platform's ranges fit around it.
    run([python, "-m", "pip", "install", "--quiet", f"{venv['clone']}[dagster,postgres,embedded]", f"dagster=={COMPANY_DAGSTER}"], cwd=venv["root"])
    assert run([python, "-c", "import dagster; print(dagster.__version__)"], cwd=venv["root"]).strip() == COMPANY_DAGSTER

    shop = venv["root"] / "shop"
    run([str(bin_ / "feature-platform"), "init", str(shop), "--package", "shop_features"], cwd=venv["root"])
    (shop / "shop_features" / "orders.py").write_text(textwrap.dedent(ORDERS))
    (shop / "shop_features" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    (shop / "definitions.py").write_text(textwrap.dedent(TEAM_DEFINITIONS))
    (shop / "dagster_home").mkdir()
    env = {"DAGSTER_HOME": str(shop / "dagster_home"), "SHOP_DATABASE_URL": POSTGRES_URL, "SHOP_ORDERS_TABLE": orders_table,
           "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}"}
    try:
        run([python, "-c", "import definitions, dagster as dg; dg.Definitions.validate_loadable(definitions.defs)"], cwd=shop, env=env)
        run([str(bin_ / "dagster"), "asset", "materialize", "-f", "definitions.py", "--select", "crm/customers"], cwd=shop, env=env)
        run([str(bin_ / "feature-platform"), "apply"], cwd=shop, env=env)
        backfill = run([str(bin_ / "feature-platform"), "backfill", "customer_spend", "customer_segment", "--start", "2024-05-02",
                        "--end", "2024-05-03", "--with-downstream", "--json"], cwd=shop, env=env)
        assert json.loads(backfill)["success"] is True
        reads = textwrap.dedent(
            """
            import json
            import pandas as pd
            from feature_platform import FeatureStore
            store = FeatureStore.from_repo(".")
            entities = pd.DataFrame({"customer_id": [1, 2, 1], "event_time": pd.to_datetime(["2024-05-03 12:00", "2024-05-04 00:00", "2024-05-04 00:00"], utc=True)})
            historical = store.get_historical_features(entities, "shop_model")
            online = store.get_online_features([{"customer_id": 1}, {"customer_id": 2}], "shop_model").to_dict()
            print(json.dumps({"historical": historical[["amount_sum_2d", "segment"]].to_dict("records"),
                              "online": {k: online[k] for k in ("amount_sum_2d", "segment")}}))
            """
        )
        out = json.loads(run([python, "-c", reads], cwd=shop, env=env).splitlines()[-1])
    finally:
        subprocess.run([str(bin_ / "feature-platform"), "redis", "stop"], cwd=shop, env={**clean_env(), **env}, capture_output=True, timeout=60)

    # 2024-05-02's row (known from the day's end) covers 05-01..05-02; 05-03's covers 05-02..05-03.
    assert out["historical"] == [
        {"amount_sum_2d": 15.0, "segment": "gold"},
        {"amount_sum_2d": 100.0, "segment": "silver"},
        {"amount_sum_2d": 50.0, "segment": "gold"},
    ]
    assert out["online"] == {"amount_sum_2d": [50.0, 100.0], "segment": ["gold", "silver"]}
