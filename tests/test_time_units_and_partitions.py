"""No silent reinterpretation of times: numbers are not times, rows stay in the declared partitions,
and sub-microsecond times round the same way when written and when looked up (also before 1970).
"""

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.errors import ArgumentError, ContractError, EntityFrameError

user = Entity("user", join_keys={"user_id": "int64"})
year_2024 = FeatureGroup(
    "year_2024", entities=[user], features=[Feature("score", "int64")], partitions=DailyPartitions("2024-01-01", "2025-01-01")
)
open_ended = FeatureGroup("open_ended", entities=[user], features=[Feature("score", "int64")], partitions=DailyPartitions("2024-01-01"))
old_times = FeatureGroup("old_times", entities=[user], features=[Feature("score", "int64")], partitions=DailyPartitions("1960-01-01"))


def make(root: Path, redis_url: str | None = None) -> FeatureStore:
    store = FeatureStore([year_2024, open_ended, old_times], offline_root=root / "offline", online_url=redis_url, project="units")
    store.apply()
    return store


def rows(*times: str | pd.Timestamp, scores: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": range(len(times)),
            "event_time": pd.to_datetime(list(times), utc=True, format="ISO8601"),
            "score": scores or list(range(len(times))),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    store = make(tmp_path)
    store.write_partition("year_2024", "2024-06-01", rows("2024-06-01 12:00"))
    return store


@pytest.mark.parametrize(
    "times",
    [
        pd.Series([1717243200, 1717243200]),  # seconds since 1970
        pd.Series([1717243200000, 1717243200000]),  # milliseconds
        pd.Series([1717243200.0, 1717243200.5]),
        pd.Series([1717243200, 1717243200], dtype=object),
        pd.Series([1717243200, None], dtype="Int64"),
        pd.Series(["2024-06-01", 1717243200], dtype=object),
        pd.Series([True, False]),
    ],
    ids=["int seconds", "int milliseconds", "float seconds", "object ints", "nullable ints", "strings and ints", "bools"],
)
def test_numeric_entity_times_are_refused_naming_the_column_and_the_fix(store: FeatureStore, times: pd.Series) -> None:
    entities = pd.DataFrame({"user_id": [0, 1], "event_time": times})
    with pytest.raises(EntityFrameError, match=r"time column 'event_time' holds .* not datetimes; numbers have no unit.*unit="):
        store.get_historical_features(entities, ["year_2024:score"])


def test_integer_times_converted_with_their_unit_find_the_rows(store: FeatureStore) -> None:
    seconds = pd.Series([int(pd.Timestamp("2024-06-01 13:00", tz="UTC").timestamp())])
    entities = pd.DataFrame({"user_id": [0], "event_time": pd.to_datetime(seconds, unit="s", utc=True)})
    assert store.get_historical_features(entities, ["year_2024:score"])["score"].tolist() == [0]


@pytest.mark.parametrize("bound", [1717243200, 1717243200.0, np.int64(1717243200)], ids=["int", "float", "numpy int"])
def test_numeric_read_bounds_are_refused(store: FeatureStore, bound: object) -> None:
    with pytest.raises(ArgumentError, match="is a number, not a point in time"):
        store.read_group("year_2024", start=bound)
    with pytest.raises(ArgumentError, match="is a number, not a point in time"):
        store.read_group("year_2024", end=bound)


def test_a_numpy_integer_as_of_is_a_version_number(store: FeatureStore) -> None:
    assert store.read_group("year_2024", as_of=np.int64(0))["score"].tolist() == [0]


@pytest.mark.parametrize("time", ["2019-06-01 12:00", "2031-06-01 12:00", "2023-12-31 23:59:59.999999", "2025-01-01 00:00"])
@pytest.mark.parametrize("path", ["ingest", "push offline", "push online_and_offline", "push online", "write_partition"])
def test_rows_outside_the_declared_partitions_are_refused_on_every_write_path(
    tmp_path: Path, redis_url: str, path: str, time: str
) -> None:
    store = make(tmp_path, redis_url)
    store.write_partition("year_2024", "2024-06-01", rows("2024-06-01 12:00"))
    frame = rows("2024-03-01 12:00", time)
    write = {
        "ingest": lambda: store.ingest("year_2024", frame),
        "push offline": lambda: store.push("year_2024", frame, to="offline"),
        "push online_and_offline": lambda: store.push("year_2024", frame, to="online_and_offline"),
        "push online": lambda: store.push("year_2024", frame, to="online"),
        "write_partition": lambda: store.write_partition("year_2024", time[:10], frame.iloc[1:]),
    }[path]
    with pytest.raises(ContractError, match="feature group 'year_2024', .*(event outside partition|partition key).* outside"):
        write()
    assert store.read_group("year_2024")["event_time"].tolist() == [pd.Timestamp("2024-06-01 12:00", tz="UTC")]
    assert store.get_online_features({"user_id": [0, 1]}, ["year_2024:score"]).to_dict()["score"] == [None, None]


def test_an_open_ended_group_takes_later_rows_and_refuses_rows_before_its_start(store: FeatureStore) -> None:
    store.ingest("open_ended", rows("2031-06-01 12:00"))
    with pytest.raises(ContractError, match=r"1 row\(s\) are outside \[2024-01-01T00:00:00\+00:00, open\)"):
        store.ingest("open_ended", rows("2024-06-01", "2023-06-01"))
    assert len(store.read_group("open_ended")) == 1


NANOS_1960_TO_1980 = st.integers(min_value=-(10 * 365 * 86400 * 10**9), max_value=10 * 365 * 86400 * 10**9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(NANOS_1960_TO_1980, st.integers(min_value=-3000, max_value=3000))
def test_a_nanosecond_time_is_found_at_its_own_time_and_rounds_alike_both_ways(
    tmp_path_factory: pytest.TempPathFactory, written: int, probe_offset: int
) -> None:
    store = make(tmp_path_factory.mktemp("ns"))
    event = pd.Timestamp(written, unit="ns", tz="UTC")
    store.ingest("old_times", pd.DataFrame({"user_id": [1], "event_time": pd.Series([event]), "score": [7]}))

    stored = store.read_group("old_times")["event_time"][0]
    assert stored == event.floor("us")  # Delta keeps microseconds: floored, before 1970 too
    probe = pd.Timestamp(written + probe_offset, unit="ns", tz="UTC")
    entities = pd.DataFrame({"user_id": [1, 1], "event_time": pd.Series([event, probe])})
    found = [None if pd.isna(v) else int(v) for v in store.get_historical_features(entities, ["old_times:score"])["score"]]
    # Looked up at its own time the row is there; at another time exactly when that time is not earlier, in microseconds.
    assert found[0] == 7
    assert (found[1] == 7) == (probe.floor("us") >= event.floor("us"))
    day = event.floor("us").date().isoformat()
    assert len(store.read_group("old_times", start=day, end=pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1))) == 1


def test_a_window_bound_between_microseconds_keeps_the_rows_it_should(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.ingest("old_times", rows("1969-12-31 23:59:59.999999", "1970-01-01 00:00:00"))
    start = pd.Timestamp(-500, unit="ns", tz="UTC")  # between the two stored microseconds
    assert store.read_group("old_times", start=start)["event_time"].tolist() == [pd.Timestamp(0, tz="UTC")]
    assert store.read_group("old_times", end=start)["event_time"].tolist() == [pd.Timestamp(-1000, unit="ns", tz="UTC")]


def test_a_pre_1970_row_lands_in_its_own_days_partition(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.write_partition("old_times", "1969-12-31", rows("1969-12-31 12:00:00.000000500"))
    assert store.offline.partitions(old_times) == [datetime(1969, 12, 31, tzinfo=timezone.utc).date()]


def test_entity_times_as_strings_with_different_offsets_are_the_instants_they_name(store: FeatureStore) -> None:
    entities = pd.DataFrame({"user_id": [0, 0, 0], "event_time": ["2024-06-01T13:30:00+02:00", "2024-06-01T11:30:00Z", "2024-06-01 12:30"]})
    # 11:30 UTC is before the stored 12:00 row; the other two are after it.
    assert store.get_historical_features(entities, ["year_2024:score"])["score"].isna().tolist() == [True, True, False]


def test_categorical_entity_times_are_read_as_their_values(store: FeatureStore) -> None:
    entities = pd.DataFrame({"user_id": [0], "event_time": pd.Series(["2024-06-01 13:00"]).astype("category")})
    assert store.get_historical_features(entities, ["year_2024:score"])["score"].tolist() == [0]
