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


def windows(aggregations: list[Aggregation], version: int = 1) -> StreamFeatureGroup:
    return StreamFeatureGroup("card_windows", entities=[card], fields={"amount": "float64", "merchant_id": "int64"},
                              aggregations=aggregations, version=version)


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
