"""A tiny landing repository for the operations tests: one raw source, two groups with different lookbacks."""

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, RawSource
from feature_platform.orchestration import FeatureStoreResource, build_definitions
from feature_platform.sources.landing import write_source

user = Entity("user", join_keys={"user_id": "int64"})
DAYS = DailyPartitions(start="2024-05-01")

clicks = RawSource("clicks", partitions=DAYS, description="Landed click events.")


def count_clicks(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    """Clicks per user and day, stamped at the day's start."""
    events = inputs["clicks"]
    if events.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype="int64"), "event_time": pd.Series(dtype="datetime64[us, UTC]"), "clicks": pd.Series(dtype="int64")})
    events = events[(events["event_time"] >= start) & (events["event_time"] < end)]
    day = events["event_time"].dt.floor("D")
    return events.assign(event_time=day).groupby(["user_id", "event_time"], as_index=False).agg(clicks=("page", "size"))


def count_clicks_3d(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    """Clicks per user over the day and the two before, one row per user and day."""
    events = inputs["clicks"]
    rows = []
    day = pd.Timestamp(start)
    while day < pd.Timestamp(end):
        inside = events[(events["event_time"] >= day - timedelta(days=2)) & (events["event_time"] < day + timedelta(days=1))]
        counts = inside.groupby("user_id", as_index=False).agg(clicks_3d=("page", "size"))
        rows.append(counts.assign(event_time=day))
        day += timedelta(days=1)
    return pd.concat(rows, ignore_index=True)[["user_id", "event_time", "clicks_3d"]]


daily_clicks = FeatureGroup(
    "daily_clicks",
    entities=[user],
    features=[Feature("clicks", "int64", "Clicks that day.")],
    partitions=DAYS,
    description="Clicks per user and day.",
    owner="team:growth",
    tags={"domain": "web"},
    compute=count_clicks,
    sources=["clicks"],
)

clicks_3d = FeatureGroup(
    "clicks_3d",
    entities=[user],
    features=[Feature("clicks_3d", "int64", "Clicks over three days.")],
    partitions=DAYS,
    owner="team:growth",
    compute=count_clicks_3d,
    sources=["clicks"],
    lookback=timedelta(days=2),
)

GROUPS = [daily_clicks, clicks_3d]


def click_frame(day: str, user_ids: list[int]) -> pd.DataFrame:
    """One click per listed user at 10:00 UTC of `day` (a user listed twice clicks twice)."""
    return pd.DataFrame(
        {
            "user_id": pd.Series(user_ids, dtype="int64"),
            "page": [f"/p{i}" for i in range(len(user_ids))],
            "event_time": pd.Timestamp(f"{day} 10:00", tz="UTC"),
        }
    )


def land(raw_root: Path, day: str, user_ids: list[int]) -> Path:
    """Write the clicks of `day` into the landing folder, as an upstream system would."""
    return Path(write_source(raw_root, clicks, datetime.fromisoformat(day).date(), click_frame(day, user_ids)))


def landing_defs(home: Path, raw_root: str | None = None) -> tuple[dg.Definitions, FeatureStoreResource]:
    """The repository's definitions and a resource on `home` (raw files under `home/raw` unless given)."""
    resource = FeatureStoreResource(project="ops", home=str(home), raw_root=raw_root)
    resource.build_store(GROUPS, sources=[clicks]).apply()
    defs = dg.Definitions.merge(
        build_definitions(GROUPS, sources=[clicks]), dg.Definitions(resources={"feature_platform_store": resource})
    )
    return defs, resource


def materialize_days(home: str, raw_root: str, days: list[str]) -> list[str]:
    """Materialize `daily_clicks` one Dagster run per day (a backfill worker); returns failed days."""
    defs, _ = landing_defs(Path(home), raw_root)
    asset = defs.resolve_assets_def(dg.AssetKey(["features", "daily_clicks"]))
    failed = []
    for day in days:
        if not dg.materialize([asset], partition_key=day, raise_on_error=False).success:
            failed.append(day)
    return failed


def write_days(offline_root: str, days: list[str]) -> list[int]:
    """Commit one partition of `daily_clicks` per day straight through the offline store; returns versions."""
    from feature_platform import FeatureStore

    store = FeatureStore([daily_clicks], offline_root=offline_root, project="ops")
    store.apply()
    frames = {day: count_clicks({"clicks": click_frame(day, [1, 2, 2])}, *DailyPartitions.window(day)) for day in days}
    return [store.write_partition("daily_clicks", day, frame).version for day, frame in frames.items()]
