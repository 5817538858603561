"""Small definitions and frames for the online-store tests."""

from datetime import timedelta
from pathlib import Path

import pandas as pd

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, FeatureView

user = Entity("user", join_keys={"user_id": "int64"})
pair = Entity("pair", join_keys={"left": "string", "right": "string"})


def scores_group(*, version: int = 1, ttl: timedelta | None = None, created_time: str | None = None) -> FeatureGroup:
    """A daily group of users with an int and a string feature."""
    return FeatureGroup(
        "scores",
        entities=[user],
        features=[Feature("score", "int64"), Feature("label", "string")],
        created_time=created_time,
        partitions=DailyPartitions(start="2024-01-01"),
        version=version,
        ttl=ttl,
    )


def pair_group() -> FeatureGroup:
    """An unpartitioned group keyed by two strings."""
    return FeatureGroup("pairs", entities=[pair], features=[Feature("weight", "float64")], partitions=None)


def online_store(tmp_path: Path, redis_url: str, *groups: FeatureGroup, views: tuple[FeatureView, ...] = (), project: str = "test") -> FeatureStore:
    """A store with these groups applied on a temporary Delta root and the test Redis server."""
    store = FeatureStore(groups=list(groups), views=list(views), offline_root=tmp_path / "offline", online_url=redis_url, project=project)
    store.apply()
    return store


def score_rows(day: str, user_ids: list[int], score: int, *, hour: int = 12) -> pd.DataFrame:
    """Rows of `scores` at `hour` of `day`: score `score + user_id`, label `'<day>'`."""
    return pd.DataFrame(
        {
            "user_id": user_ids,
            "event_time": pd.Timestamp(f"{day} {hour:02d}:00", tz="UTC"),
            "score": [score + u for u in user_ids],
            "label": day,
        }
    )
