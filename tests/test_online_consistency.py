"""Consistency: after syncing every partition up to T, the online vector equals `get_historical_features` at T.

Both are also checked against a brute-force point-in-time reference on the same random data.
"""

import random
import tempfile
import uuid
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Feature, FeatureGroup, FeatureStore
from tests.online_fixtures import user

DAYS = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")

events = st.lists(
    st.tuples(
        st.integers(0, 4),  # user
        st.integers(0, 3),  # day
        st.integers(0, 3),  # hour: few values, so equal event times happen
        st.one_of(st.none(), st.integers(0, 2)),  # created time: null or an hour offset
        st.integers(-1000, 1000),
        st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32)),
    ),
    max_size=40,
)


def group() -> FeatureGroup:
    return FeatureGroup(
        "txn",
        entities=[user],
        features=[Feature("count", "int64"), Feature("amount", "float64")],
        created_time="created_at",
        partitions=DailyPartitions(start="2024-01-01"),
    )


def frame(rows: list[tuple]) -> pd.DataFrame:
    data = pd.DataFrame(rows, columns=["user_id", "day", "hour", "created", "count", "amount"])
    data["event_time"] = pd.to_datetime([DAYS[d] + pd.Timedelta(hours=h) for d, h in zip(data["day"], data["hour"])], utc=True)
    data["created_at"] = [pd.NaT if pd.isna(c) else DAYS[0] + pd.Timedelta(hours=int(c)) for c in data["created"]]
    data["created_at"] = pd.to_datetime(data["created_at"], utc=True)
    data = data.drop_duplicates(["user_id", "event_time", "created_at"])
    return data[["user_id", "event_time", "created_at", "count", "amount", "day"]]


def point_in_time(data: pd.DataFrame, as_of: pd.Timestamp, user_ids: list[int]) -> dict[str, list]:
    """Brute force: per user the row of greatest (event_time, created_time) with event_time <= as_of."""
    visible = data[data["event_time"] <= as_of]
    count, amount = [], []
    for user_id in user_ids:
        candidates = visible[visible["user_id"] == user_id]
        if candidates.empty:
            count.append(None)
            amount.append(None)
            continue
        created = candidates["created_at"].fillna(pd.Timestamp.min.tz_localize("UTC"))
        best = candidates.assign(_created=created).sort_values(["event_time", "_created"]).iloc[-1]
        count.append(int(best["count"]))
        amount.append(None if pd.isna(best["amount"]) else float(best["amount"]))
    return {"user_id": user_ids, "count": count, "amount": amount}


def historical(store: FeatureStore, as_of: pd.Timestamp, user_ids: list[int]) -> dict[str, list]:
    """`get_historical_features` at `as_of`, in the shape of an online answer."""
    frame = store.get_historical_features(pd.DataFrame({"user_id": user_ids, "event_time": as_of}), ["count", "amount"])
    count = [None if pd.isna(v) else int(v) for v in frame["count"]]
    amount = [None if pd.isna(v) else float(v) for v in frame["amount"]]
    return {"user_id": frame["user_id"].tolist(), "count": count, "amount": amount}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=events, last_day=st.integers(0, 3), seed=st.integers(0, 1000))
def test_online_after_sync_up_to_t_equals_point_in_time_at_t(online_url, rows, last_day, seed):
    data = frame(rows)
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore([group()], offline_root=Path(folder), online_url=online_url, project=f"p{uuid.uuid4().hex}")
        store.apply()
        for day in sorted(set(data["day"])):
            store.write_partition("txn", DAYS[day].date().isoformat(), data[data["day"] == day].drop(columns="day"))
        synced = [d for d in range(last_day + 1)]
        random.Random(seed).shuffle(synced)  # backfill order must not matter
        for day in synced:
            store.sync_to_online("txn", partition_key=DAYS[day].date().isoformat())
        as_of = DAYS[last_day] + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        user_ids = list(range(5))
        online = store.get_online_features({"user_id": user_ids}, ["count", "amount"]).to_dict()
        assert online == point_in_time(data, as_of, user_ids)
        assert online == historical(store, as_of, user_ids)
