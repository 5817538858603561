"""One answer for `as_of`: read_group, get_historical_features and training datasets read the same version.

A table is written many times (partition replacements and ingests across
partitions); after each write the test notes the time and the rows a model of
the table holds. As of each noted time every reader must see exactly that
model; before the first commit, every reader sees an empty table.
"""

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import FeatureStore, FeatureView
from feature_platform.errors import ArgumentError
from tests.retrieval_fixtures import make_store, merchant_rows, user_rows

DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]
USER_COUNTS = FeatureView("user_counts", features=["user_stats:txn_count"])
COLUMNS = ["user_id", "event_time", "txn_count", "amount_mean", "segment"]


def moment() -> datetime:
    """A time strictly between two commits: commit times are kept in milliseconds."""
    time.sleep(0.003)
    now = datetime.now(timezone.utc)
    time.sleep(0.003)
    return now


def sorted_rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(map(tuple, frame[COLUMNS].astype(object).itertuples(index=False)))


def point_in_time(model: pd.DataFrame, user_id: int, at: pd.Timestamp) -> object:
    """Brute force: the txn_count of the user's latest row with event_time in [at - 2 days, at] (the ttl)."""
    rows = model[(model["user_id"] == user_id) & (model["event_time"] <= at) & (model["event_time"] >= at - pd.Timedelta(days=2))]
    if rows.empty:
        return None
    return int(rows.sort_values("event_time", kind="stable").iloc[-1]["txn_count"])


def apply(model: pd.DataFrame, kind: str, day: str, frame: pd.DataFrame) -> pd.DataFrame:
    if kind == "replace":
        kept = model[model["event_time"].dt.strftime("%Y-%m-%d") != day]
        return pd.concat([kept, frame], ignore_index=True)
    return pd.concat([model, frame], ignore_index=True)


def write(store: FeatureStore, kind: str, day: str, frame: pd.DataFrame) -> None:
    if kind == "replace":
        store.write_partition("user_stats", day, frame)
    else:
        store.ingest("user_stats", frame)


def frame_for(day: str, hour: int, users: list[int], base: int) -> pd.DataFrame:
    """`user_stats` rows at `hour` of `day` (UTC), typed even when empty."""
    return pd.DataFrame(
        {
            "user_id": pd.Series(users, dtype="int64"),
            "event_time": pd.Series([pd.Timestamp(f"{day} {hour:02d}:00", tz="UTC")] * len(users), dtype="datetime64[us, UTC]"),
            "txn_count": pd.Series([base + u for u in users], dtype="int64"),
            "amount_mean": pd.Series([float(u) for u in users], dtype="float64"),
            "segment": pd.Series([f"s{base}"] * len(users), dtype=object),
        }
    )


def assert_every_reader_sees(store: FeatureStore, at: datetime | str, model: pd.DataFrame) -> None:
    """read_group, get_historical_features and a training dataset as of `at` all agree with `model`."""
    stored = store.read_group("user_stats", as_of=at)
    assert sorted_rows(stored) == sorted_rows(model), at
    entities = pd.DataFrame(
        [(u, pd.Timestamp(f"{d} 23:00", tz="UTC")) for u in (1, 2, 3) for d in DAYS], columns=["user_id", "event_time"]
    )
    expected = [point_in_time(model, u, t) for u, t in zip(entities["user_id"], entities["event_time"])]
    historical = store.get_historical_features(entities, ["user_stats:txn_count"], as_of=at)
    assert [None if pd.isna(v) else int(v) for v in historical["txn_count"]] == expected, at
    dataset = store.create_training_dataset("user_counts", entities, as_of=at)
    loaded = store.load_training_dataset("user_counts", dataset.version)
    assert [None if pd.isna(v) else int(v) for v in loaded["txn_count"]] == expected, at


def test_every_reader_sees_the_table_as_it_was_at_each_of_many_versions(tmp_path: Path) -> None:
    store = make_store(tmp_path, (USER_COUNTS,))
    before = moment()
    writes = [
        ("replace", "2024-05-01", frame_for("2024-05-01", 10, [1, 2], 100)),
        ("replace", "2024-05-02", frame_for("2024-05-02", 10, [1, 3], 200)),
        ("ingest", "", pd.concat([frame_for("2024-05-01", 11, [2], 300), frame_for("2024-05-03", 9, [1, 2, 3], 300)])),
        ("replace", "2024-05-01", frame_for("2024-05-01", 8, [3], 400)),
        ("replace", "2024-05-02", frame_for("2024-05-02", 10, [], 500)),
        ("ingest", "", frame_for("2024-05-02", 12, [2], 600)),
        ("replace", "2024-05-03", frame_for("2024-05-03", 1, [1], 700)),
    ]
    model = pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ["int64", "datetime64[us, UTC]", "int64", "float64", "object"])})
    states = []
    for kind, day, frame in writes:
        write(store, kind, day, frame)
        model = apply(model, kind, day, frame)
        states.append((moment(), model))
    assert store.history("user_stats")[0]["version"] == len(writes) - 1

    assert_every_reader_sees(store, before, model.iloc[0:0])
    for at, expected in states:
        assert_every_reader_sees(store, at, expected)
    # The same instants written as ISO strings in another time zone resolve alike.
    at, expected = states[1]
    assert_every_reader_sees(store, at.astimezone(timezone(timedelta(hours=-5))).isoformat(), expected)


def test_a_time_when_only_version_0_existed_reads_version_0_everywhere(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (1, 1.0, "a")}))
    only_version_0 = moment()
    for count in (2, 3, 4):
        store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (count, 1.0, "a")}))
    entities = pd.DataFrame({"user_id": [1], "event_time": [pd.Timestamp("2024-05-02")]})

    assert store.read_group("user_stats", as_of=only_version_0)["txn_count"].tolist() == [1]
    assert store.get_historical_features(entities, ["user_stats:txn_count"], as_of=only_version_0)["txn_count"].tolist() == [1]
    assert store.offline.resolve_version(store.group("user_stats"), only_version_0) == 0


def test_before_the_first_commit_every_reader_sees_an_empty_table(tmp_path: Path) -> None:
    store = make_store(tmp_path, (USER_COUNTS,))
    before = moment()
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (1, 1.0, "a")}))
    entities = pd.DataFrame({"user_id": [1], "event_time": [pd.Timestamp("2024-05-02")]})

    assert store.read_group("user_stats", as_of=before).empty
    assert store.read_group("user_stats", as_of="2000-01-01").empty
    assert store.get_historical_features(entities, ["user_stats:txn_count"], as_of=before)["txn_count"].isna().all()
    manifest = store.create_training_dataset("user_counts", entities, as_of=before).manifest
    assert manifest["group_versions"] == {"user_stats": None}


def test_a_group_never_written_reads_empty_as_of_any_time(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    assert store.read_group("user_stats", as_of=datetime.now(timezone.utc)).empty
    with pytest.raises(ArgumentError, match="'user_stats' has no table yet, so no version 0"):
        store.read_group("user_stats", as_of=0)


def test_a_time_after_the_last_commit_reads_the_latest_version(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (1, 1.0, "a")}))
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (2, 1.0, "a")}))
    assert store.read_group("user_stats", as_of="2999-01-01")["txn_count"].tolist() == [2]


def test_groups_as_of_one_time_each_read_their_own_version_then(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (1, 1.0, "a")}))
    only_users = moment()
    store.write_partition("merchant_stats", "2024-05-01", merchant_rows("2024-05-01", {7: (1, 0.5)}))
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (2, 1.0, "a")}))
    entities = pd.DataFrame({"user_id": [1], "merchant_id": [7], "event_time": [pd.Timestamp("2024-05-02")]})
    frame = store.get_historical_features(entities, ["user_stats:txn_count", "merchant_stats:fraud_rate"], as_of=only_users)
    assert frame["txn_count"].tolist() == [1] and frame["fraud_rate"].isna().all()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["replace", "ingest"]),
            st.sampled_from(DAYS),
            st.integers(min_value=0, max_value=23),
            st.sets(st.sampled_from([1, 2, 3]), max_size=3),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_random_write_sequences_read_back_alike_as_of_every_moment(tmp_path_factory: pytest.TempPathFactory, steps: list) -> None:
    store = make_store(tmp_path_factory.mktemp("travel"))
    model = pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ["int64", "datetime64[us, UTC]", "int64", "float64", "object"])})
    states = [(moment(), model)]
    seen: set[tuple[int, str, int]] = set()
    for number, (kind, day, hour, users) in enumerate(steps):
        if kind == "ingest":  # an ingest repeating a stored (key, event time) would tie; keep them distinct
            users = {u for u in users if (u, day, hour) not in seen}
        frame = frame_for(day, hour, sorted(users), 100 * number)
        if kind == "ingest" and frame.empty:
            continue
        write(store, kind, day, frame)
        model = apply(model, kind, day, frame)
        seen = {(int(u), t.strftime("%Y-%m-%d"), t.hour) for u, t in zip(model["user_id"], model["event_time"])}
        states.append((moment(), model))
    for at, expected in states:
        assert sorted_rows(store.read_group("user_stats", as_of=at)) == sorted_rows(expected)
        entities = pd.DataFrame([(u, pd.Timestamp(f"{d} 23:00", tz="UTC")) for u in (1, 2, 3) for d in DAYS], columns=["user_id", "event_time"])
        historical = store.get_historical_features(entities, ["user_stats:txn_count"], as_of=at)
        expected_counts = [point_in_time(expected, u, t) for u, t in zip(entities["user_id"], entities["event_time"])]
        assert [None if pd.isna(v) else int(v) for v in historical["txn_count"]] == expected_counts


def test_as_of_each_commit_time_from_the_history_reads_that_version(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    for count in range(6):
        store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (count, 1.0, "a")}))
    for entry in store.history("user_stats"):
        counts = store.read_group("user_stats", as_of=entry["timestamp"])["txn_count"].tolist()
        assert counts == [entry["version"]], entry
        assert store.read_group("user_stats", as_of=entry["version"])["txn_count"].tolist() == counts
