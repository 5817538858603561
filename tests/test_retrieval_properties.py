"""Property tests: `get_historical_features` equals a brute-force point-in-time join written here.

Random writes (several appends, so later-write tie-breaks happen) of a group
with a composite key (an int and a string holding separator characters),
optional created time and ttl, against random entity rows with duplicates,
unknown keys, exact time ties and times on the ttl boundary, naive or tz-aware;
with and without the table's join index.
"""

import tempfile
from datetime import timedelta
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore

BASE = pd.Timestamp("2024-05-01 00:00", tz="UTC")
STRING_KEYS = ["a:b", "a", "a|b", ":", "", "ü,ö"]
HOURS = [0, 6, 24, 30, 48]

times = st.sampled_from(HOURS).map(lambda h: BASE + timedelta(hours=h))
keys = st.tuples(st.integers(0, 1), st.sampled_from(STRING_KEYS))
feature_row = st.fixed_dictionaries(
    {
        "key": keys,
        "event_time": times,
        "created": st.one_of(st.none(), st.sampled_from([0, 1])),
        "count": st.integers(-(2**40), 2**40),
        "score": st.floats(allow_nan=False, allow_infinity=False, width=64),
    }
)


@st.composite
def writes(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """One to three writes; later ones often rewrite rows of earlier ones with new values (exact ties)."""
    written = [draw(st.lists(feature_row, max_size=8))]
    for _ in range(draw(st.integers(0, 2))):
        earlier = [row for rows in written for row in rows]
        repeated = draw(st.lists(st.sampled_from(earlier), max_size=4)) if earlier else []
        fresh = draw(st.lists(feature_row, max_size=4))
        values = draw(st.lists(st.integers(-(2**40), 2**40), min_size=len(repeated), max_size=len(repeated)))
        written.append([{**row, "count": value, "score": float(value)} for row, value in zip(repeated, values)] + fresh)
    return written
ENTITY_HOURS = HOURS + [5, 47, 54, 72, 200]


@st.composite
def entity_rows(draw: st.DrawFn, written: list[list[dict[str, Any]]]) -> list[tuple[tuple[int, str], int]]:
    """Entity rows, mostly keys that were written (plus unknown ones), at grid times."""
    stored = sorted({row["key"] for rows in written for row in rows})
    key = st.sampled_from(stored) | keys if stored else keys
    return draw(st.lists(st.tuples(key, st.sampled_from(ENTITY_HOURS)), min_size=1, max_size=12))


def make_group(ttl_hours: int | None, with_created: bool, partitioned: bool) -> FeatureGroup:
    entity = Entity("account", join_keys={"account_id": "int64", "region": "string"})
    return FeatureGroup(
        "account_stats",
        entities=[entity],
        features=[Feature("count", "int64"), Feature("score", "float64")],
        created_time="created_time" if with_created else None,
        partitions=DailyPartitions(start="2024-04-01") if partitioned else None,
        ttl=None if ttl_hours is None else timedelta(hours=ttl_hours),
    )


def unique_rows(rows: list[dict[str, Any]], with_created: bool) -> list[dict[str, Any]]:
    """One write may not repeat (keys, event_time, created_time): keep the first of each."""
    seen, kept = set(), []
    for row in rows:
        identity = (row["key"], row["event_time"], row["created"] if with_created else None)
        if identity not in seen:
            seen.add(identity)
            kept.append(row)
    return kept


def write_frame(rows: list[dict[str, Any]], with_created: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "account_id": pd.array([r["key"][0] for r in rows], dtype="int64"),
            "region": pd.array([r["key"][1] for r in rows], dtype=object),
            "event_time": pd.to_datetime([r["event_time"] for r in rows], utc=True),
            "count": pd.array([r["count"] for r in rows], dtype="int64"),
            "score": pd.array([r["score"] for r in rows], dtype="float64"),
        }
    )
    if with_created:
        frame["created_time"] = pd.to_datetime(
            [None if r["created"] is None else BASE + timedelta(minutes=r["created"]) for r in rows], utc=True
        )
    return frame


def brute_force(
    written: list[list[dict[str, Any]]], entities: list[tuple[tuple[int, str], int]], ttl_hours: int | None, with_created: bool
) -> list[tuple[Any, Any]]:
    """For each entity row, scan every stored row: same keys, inside [t - ttl, t], greatest
    (event_time, created_time — a missing one lowest), then the latest write."""
    results = []
    for key, hours in entities:
        t = BASE + timedelta(hours=hours)
        best, best_rank = None, None
        for write_number, rows in enumerate(written):
            for row in rows:
                if row["key"] != key or row["event_time"] > t:
                    continue
                if ttl_hours is not None and row["event_time"] < t - timedelta(hours=ttl_hours):
                    continue
                created = -1 if not with_created or row["created"] is None else row["created"]
                rank = (row["event_time"], created, write_number)
                if best_rank is None or rank > best_rank:
                    best, best_rank = row, rank
        results.append((None, None) if best is None else (best["count"], best["score"]))
    return results


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    written=writes(),
    ttl_hours=st.sampled_from([None, 6, 24]),
    with_created=st.booleans(),
    partitioned=st.booleans(),
    timezone=st.sampled_from([None, "UTC", "America/New_York", "Asia/Kolkata"]),
    indexed=st.booleans(),
)
def test_point_in_time_join_matches_brute_force(data, written, ttl_hours, with_created, partitioned, timezone, indexed):
    group = make_group(ttl_hours, with_created, partitioned)
    written = [unique_rows(rows, with_created) for rows in written]
    entities = data.draw(entity_rows(written))
    entity_df = pd.DataFrame(
        {
            "account_id": [k[0] for k, _ in entities],
            "region": [k[1] for k, _ in entities],
            "event_time": [BASE + timedelta(hours=h) for _, h in entities],
            "label": list(range(len(entities))),
        }
    )
    if timezone is None:
        entity_df["event_time"] = entity_df["event_time"].dt.tz_localize(None)  # naive means UTC
    else:
        entity_df["event_time"] = entity_df["event_time"].dt.tz_convert(timezone)
    original = entity_df.copy()
    with tempfile.TemporaryDirectory() as root:
        store = FeatureStore(groups=[group], offline_root=root, project="prop")
        store.apply()
        for rows in written:
            if rows:
                store.ingest("account_stats", write_frame(rows, with_created))
        if indexed:  # the join index's lookup instead of the ASOF join
            store.build_join_index("account_stats")
        result = store.get_historical_features(entity_df, ["account_stats:count", "account_stats:score"])

    expected = brute_force(written, entities, ttl_hours, with_created)
    pd.testing.assert_frame_equal(result[original.columns], original)
    assert [None if pd.isna(v) else int(v) for v in result["count"]] == [c for c, _ in expected]
    assert [None if pd.isna(v) else float(v) for v in result["score"]] == [s for _, s in expected]
    if all(c is not None for c, _ in expected):
        assert result["count"].dtype == "int64"
    else:
        assert result["count"].dtype == "Int64"
