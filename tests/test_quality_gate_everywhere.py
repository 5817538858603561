"""The same quality gate on every write path, and pushes that a retry stores once.

ERROR rules refuse rows written through `write_partition`, `ingest`, `push`
(every target) and `POST /push` as they do in the Dagster assets: a
`QualityGateError` (HTTP 400) naming the rule, nothing stored offline or
online. `validate=False` is the explicit bypass. A push retried after a Redis
error appends its offline rows once.
"""

import socket
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.definitions.rules import Rule
from feature_platform.errors import QualityGateError
from feature_platform.online.store import OnlineStoreError
from feature_platform.serving.server import create_app

user = Entity("user", join_keys={"user_id": "int64"})
payments = FeatureGroup(
    "payments",
    entities=[user],
    features=[Feature("amount", "float64"), Feature("channel", "string")],
    partitions=DailyPartitions("2024-05-01"),
    rules=[
        Rule.in_range("amount", min=0),
        Rule.max_null_fraction("channel", 0.5),
        Rule.allowed_values("channel", ["web", "app"], severity="WARN"),
    ],
)


def make(root: Path, redis_url: str) -> FeatureStore:
    store = FeatureStore([payments], offline_root=root / "offline", online_url=redis_url, project="gate")
    store.apply()
    return store


def rows(day: str, amounts: list[float], channels: list[str | None] | None = None, *, first_user: int = 1) -> pd.DataFrame:
    n = len(amounts)
    return pd.DataFrame(
        {
            "user_id": range(first_user, first_user + n),
            "event_time": pd.Timestamp(f"{day} 10:00", tz="UTC"),
            "amount": amounts,
            "channel": channels or ["web"] * n,
        }
    )


def as_json(frame: pd.DataFrame) -> dict[str, list]:
    return {"user_id": frame["user_id"].tolist(), "event_time": [t.isoformat() for t in frame["event_time"]],
            "amount": frame["amount"].tolist(), "channel": frame["channel"].tolist()}


WRITES = {
    "write_partition": lambda s, f, **kw: s.write_partition("payments", "2024-05-02", f, **kw),
    "ingest": lambda s, f, **kw: s.ingest("payments", f, **kw),
    "push online": lambda s, f, **kw: s.push("payments", f, to="online", **kw),
    "push offline": lambda s, f, **kw: s.push("payments", f, to="offline", **kw),
    "push online_and_offline": lambda s, f, **kw: s.push("payments", f, to="online_and_offline", **kw),
}


def stored(store: FeatureStore) -> tuple[list, list]:
    """The offline (user, amount) rows and the online amounts of users 1..4."""
    offline = store.read_group("payments").sort_values(["user_id", "event_time"])
    online = store.get_online_features({"user_id": [1, 2, 3, 4]}, ["payments:amount"]).to_dict()["amount"]
    return list(zip(offline["user_id"], offline["amount"])), online


@pytest.mark.parametrize("path", list(WRITES))
def test_an_error_rule_refuses_the_write_on_every_path_and_stores_nothing(tmp_path: Path, redis_url: str, path: str) -> None:
    store = make(tmp_path, redis_url)
    with pytest.raises(QualityGateError, match=r"'payments', partition 2024-05-02: amount_in_range \[ERROR\] failed on 1 of 2 rows") as refused:
        WRITES[path](store, rows("2024-05-02", [5.0, -1.0]))
    assert refused.value.group == "payments" and refused.value.blocked == ("2024-05-02",)
    assert "validate=False" in str(refused.value)
    assert stored(store) == ([], [None] * 4)
    assert store.history("payments") == []


@pytest.mark.parametrize("path", list(WRITES))
def test_validate_false_is_the_explicit_bypass(tmp_path: Path, redis_url: str, path: str) -> None:
    store = make(tmp_path, redis_url)
    WRITES[path](store, rows("2024-05-02", [5.0, -1.0]), validate=False)
    offline, online = stored(store)
    assert offline == ([] if path == "push online" else [(1, 5.0), (2, -1.0)])
    assert online == ([None] * 4 if path in ("write_partition", "ingest", "push offline") else [5.0, -1.0, None, None])


@pytest.mark.parametrize("path", list(WRITES))
def test_a_failed_warn_rule_never_blocks(tmp_path: Path, redis_url: str, path: str) -> None:
    store = make(tmp_path, redis_url)
    WRITES[path](store, rows("2024-05-02", [5.0, 6.0], ["web", "phone"]))
    offline, online = stored(store)
    assert offline == ([] if path == "push online" else [(1, 5.0), (2, 6.0)])
    assert online == ([None] * 4 if path in ("write_partition", "ingest", "push offline") else [5.0, 6.0, None, None])


def test_an_ingest_with_one_blocked_partition_writes_no_partition(tmp_path: Path, redis_url: str) -> None:
    store = make(tmp_path, redis_url)
    frame = pd.concat([rows("2024-05-01", [1.0]), rows("2024-05-02", [-3.0], first_user=2), rows("2024-05-03", [2.0], first_user=3)])
    with pytest.raises(QualityGateError, match=r"partition 2024-05-02: amount_in_range") as refused:
        store.ingest("payments", frame)
    assert refused.value.blocked == ("2024-05-02",)
    assert store.history("payments") == []


def test_partition_wide_rules_are_judged_per_partition(tmp_path: Path, redis_url: str) -> None:
    store = make(tmp_path, redis_url)
    # Half of the channels of 2024-05-01 are missing (allowed), all of 2024-05-02's (refused).
    frame = pd.concat([rows("2024-05-01", [1.0, 2.0], ["web", None]), rows("2024-05-02", [3.0], [None], first_user=3)])
    with pytest.raises(QualityGateError, match=r"partition 2024-05-02: channel_null_fraction \[ERROR\]") as refused:
        store.ingest("payments", frame)
    assert refused.value.blocked == ("2024-05-02",)
    store.ingest("payments", frame.iloc[:2])
    assert len(store.read_group("payments")) == 2


@pytest.mark.parametrize("to", ["online", "offline", "online_and_offline"])
def test_http_push_runs_the_same_gate(tmp_path: Path, redis_url: str, to: str) -> None:
    store = make(tmp_path, redis_url)
    client = TestClient(create_app(store))
    answer = client.post("/push", json={"group": "payments", "rows": as_json(rows("2024-05-02", [5.0, -1.0])), "to": to})
    assert answer.status_code == 400
    assert "amount_in_range [ERROR] failed on 1 of 2 rows" in answer.json()["detail"]
    assert stored(store) == ([], [None] * 4)
    accepted = client.post("/push", json={"group": "payments", "rows": as_json(rows("2024-05-02", [5.0, 1.0])), "to": to})
    assert accepted.status_code == 200 and accepted.json()["rows"] == 2


def dead_redis_url() -> str:
    """A Redis URL where nothing listens (a port just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_a_push_retried_after_a_redis_error_stores_its_offline_rows_once(tmp_path: Path, redis_url: str) -> None:
    broken = FeatureStore([payments], offline_root=tmp_path / "offline", online_url=dead_redis_url(), project="gate")
    broken.apply()
    frame = rows("2024-05-02", [5.0, 6.0])
    with pytest.raises(OnlineStoreError):
        broken.push("payments", frame, to="online_and_offline")
    with pytest.raises(OnlineStoreError):
        broken.push("payments", frame, to="online_and_offline")
    store = make(tmp_path, redis_url)
    assert store.push("payments", frame, to="online_and_offline") == 2
    assert store.push("payments", frame, to="online_and_offline") == 2

    assert stored(store) == ([(1, 5.0), (2, 6.0)], [5.0, 6.0, None, None])
    assert len(store.history("payments")) == 1


def test_a_push_of_other_rows_is_appended(tmp_path: Path, redis_url: str) -> None:
    store = make(tmp_path, redis_url)
    store.push("payments", rows("2024-05-02", [5.0]), to="online_and_offline")
    store.push("payments", rows("2024-05-02", [7.0]), to="online_and_offline")  # a correction: same key and time
    store.push("payments", rows("2024-05-03", [5.0]), to="online_and_offline")
    offline = store.read_group("payments").sort_values("event_time")
    assert sorted(offline["amount"]) == [5.0, 5.0, 7.0]
    assert store.get_online_features({"user_id": [1]}, ["payments:amount"]).to_dict()["amount"] == [5.0]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.floats(min_value=-10, max_value=10, allow_nan=False), st.none()), min_size=1, max_size=8))
def test_a_write_is_stored_exactly_when_the_rules_pass(tmp_path_factory: pytest.TempPathFactory, redis_url: str, amounts: list) -> None:
    store = make(tmp_path_factory.mktemp("gate"), redis_url)
    frame = rows("2024-05-02", [float("nan") if a is None else a for a in amounts])
    passes = all(a is None or a >= 0 for a in amounts)
    for path, write in WRITES.items():
        if passes:
            write(store, frame)
        else:
            with pytest.raises(QualityGateError):
                write(store, frame)
    assert bool(store.history("payments")) == passes
