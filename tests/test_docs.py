"""The quickstart's code runs as written and does what its comments say."""

import re
from pathlib import Path

import pandas as pd
import pytest

from feature_platform.online.redis_server import stop_server

QUICKSTART = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"


def python_blocks(markdown: Path) -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", markdown.read_text(), re.S))


def test_quickstart_runs_and_reads_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    namespace: dict = {"__name__": "quickstart"}
    try:
        exec(compile(python_blocks(QUICKSTART), str(QUICKSTART), "exec"), namespace)
    finally:
        stop_server(tmp_path / "quickstart-data")  # the online sync asset started the embedded Redis

    assert (namespace["first"].rows, namespace["first"].version) == (2, 0)
    assert len(namespace["rows"]) == 2
    assert len(namespace["as_first_written"]) == 2
    assert len(namespace["as_of_now"]) == 4
    computed = namespace["store"].read_group("computed_spend")
    assert computed[["user_id", "txn_count_1d", "amount_sum_1d"]].to_dict("records") == [
        {"user_id": 1, "txn_count_1d": 2, "amount_sum_1d": 15.0},
        {"user_id": 2, "txn_count_1d": 1, "amount_sum_1d": 7.5},
    ]
    assert (computed["event_time"] == pd.Timestamp("2024-05-02", tz="UTC")).all()
    assert (tmp_path / "quickstart-data" / "offline" / "default" / "user_spend" / "v1").is_dir()


ADOPTING = Path(__file__).resolve().parents[1] / "docs" / "adopting.md"
POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.mark.postgres
def test_the_adoption_guide_runs_and_serves_what_its_sources_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        engine.connect().close()
    except Exception as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {type(exc).__name__}")
    table = f"adoption_docs_orders_{uuid.uuid4().hex[:10]}"
    stamps = pd.to_datetime(["2024-05-01 08:00", "2024-05-01 12:00", "2024-05-02 09:00", "2024-05-02 10:00", "2024-05-02 11:00"], utc=True)
    pd.DataFrame({"order_id": range(5), "customer_id": [1, 1, 1, 2, 2], "ordered_at": stamps}).to_sql(table, engine, index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOP_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("SHOP_ORDERS_TABLE", table)
    namespace: dict = {"__name__": "adopting"}
    try:
        exec(compile(python_blocks(ADOPTING), str(ADOPTING), "exec"), namespace)
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP TABLE "{table}"'))
        engine.dispose()

    assert namespace["features"][["customer_id", "orders_1d", "paid_1d", "tier"]].to_dict("records") == [
        {"customer_id": 1, "orders_1d": 1, "paid_1d": 1.5, "tier": "gold"},
        {"customer_id": 2, "orders_1d": 2, "paid_1d": 3.0, "tier": "silver"},
    ]
    assert not (tmp_path / "shop-data" / "offline" / "default" / "payments").exists()  # the Delta source was read in place
