"""A stream group's windows change only with a new version: the online tiles of the old one cannot answer new ones."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from feature_platform import Aggregation, FeatureStore, StreamFeatureGroup
from feature_platform.errors import FeaturePlatformError
from tests.stream_fixtures import card, transaction

BASE = [Aggregation("count", timedelta(minutes=10), name="txn_count_10m"), Aggregation("sum", timedelta(hours=1), column="amount")]
ADDED = [Aggregation("max", timedelta(hours=1), column="amount")]


def windows(aggregations: list[Aggregation], version: int = 1, ttl: timedelta | None = None) -> StreamFeatureGroup:
    return StreamFeatureGroup("card_windows", entities=[card], fields={"amount": "float64", "merchant_id": "int64"},
                              aggregations=aggregations, version=version, ttl=ttl)


def store_of(tmp_path: Path, redis_url: str, group: StreamFeatureGroup) -> FeatureStore:
    return FeatureStore(groups=[group], offline_root=tmp_path / "offline", online_url=redis_url, project="stream_changes")


def consume(store: FeatureStore) -> None:
    with store.stream_processor("card_windows") as processor:
        processor.run(until_idle=True)


def test_adding_a_window_in_place_is_refused_naming_the_group_and_the_new_version(tmp_path: Path, redis_url: str) -> None:
    store_of(tmp_path, redis_url, windows(BASE)).apply()

    with pytest.raises(FeaturePlatformError) as refused:
        store_of(tmp_path, redis_url, windows(BASE + ADDED)).apply()

    assert "changes its stream windows or fields" in str(refused.value)
    assert "amount_max_1h (max of amount)" in str(refused.value)
    assert "bump the version of feature group 'card_windows' (version=2)" in str(refused.value)


def test_a_new_version_reads_the_retained_stream_and_serves_what_training_sees(tmp_path: Path, redis_url: str) -> None:
    first = store_of(tmp_path, redis_url, windows(BASE))
    first.apply()
    first.publish_events("card_windows", [transaction(5, 3.0, 7.0)])
    consume(first)
    second = store_of(tmp_path, redis_url, windows(BASE + ADDED, version=2))
    second.apply()
    second.publish_events("card_windows", [transaction(5, 1.0, 2.0)])

    consume(second)

    names = ["card_windows:txn_count_10m", "card_windows:amount_sum_1h", "card_windows:amount_max_1h"]
    online = second.get_online_features([{"card_id": 5}], names).to_dict()
    entity = pd.DataFrame({"card_id": [5], "event_time": [pd.Timestamp(datetime.now(timezone.utc))]})
    historical = second.get_historical_features(entity, names)
    assert (online["txn_count_10m"], online["amount_sum_1h"], online["amount_max_1h"]) == ([2], [9.0], [7.0])
    assert historical[["txn_count_10m", "amount_sum_1h", "amount_max_1h"]].values.tolist() == [[2, 9.0, 7.0]]


@pytest.mark.parametrize("ttl_minutes", [10, 120])
def test_a_ttl_changed_in_place_gives_online_the_statuses_training_gives(tmp_path: Path, redis_url: str, ttl_minutes: int) -> None:
    first = store_of(tmp_path, redis_url, windows(BASE, ttl=timedelta(minutes=30)))
    first.apply()
    first.publish_events("card_windows", [transaction(1, 20, 4.0), transaction(2, 5, 6.0)])
    consume(first)
    changed = store_of(tmp_path, redis_url, windows(BASE, ttl=timedelta(minutes=ttl_minutes)))

    changed.apply()

    names = ["card_windows:amount_sum_1h"]
    online = changed.get_online_features([{"card_id": 1}, {"card_id": 2}], names).to_dict(include_statuses=True)
    entity = pd.DataFrame({"card_id": [1, 2], "event_time": [pd.Timestamp(datetime.now(timezone.utc))] * 2})
    historical = changed.get_historical_features(entity, names)["amount_sum_1h"].tolist()
    if ttl_minutes == 10:  # card 1's last event (20 minutes ago) is past the new ttl, card 2's is not
        assert online["amount_sum_1h__status"] == ["OUTSIDE_MAX_AGE", "PRESENT"]
        assert online["amount_sum_1h"][1] == 6.0 and pd.isna(historical[0]) and historical[1] == 6.0
    else:
        assert online["amount_sum_1h__status"] == ["PRESENT", "PRESENT"]
        assert online["amount_sum_1h"] == historical == [4.0, 6.0]
