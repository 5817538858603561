"""The Dagster side of a stream group: its asset, and the sensor that consumes a bounded batch per tick and reports lag."""

import json
from datetime import timedelta
from pathlib import Path

import dagster as dg

from feature_platform.orchestration import AlertSinksResource, FeatureStoreResource, build_definitions
from feature_platform.orchestration.streaming import stream_sensor
from feature_platform.quality.alerts import read_alerts
from tests.stream_fixtures import card_windows, features, stream_store, transaction


def resources(tmp_path: Path, redis_url: str) -> dict:
    return {
        "feature_platform_store": FeatureStoreResource(project="streams", home=str(tmp_path), offline_root=str(tmp_path / "offline"), redis_url=redis_url),
        "feature_platform_alerts": AlertSinksResource(alert_file=str(tmp_path / "alerts.jsonl")),
    }


def tick(sensor: dg.SensorDefinition, tmp_path: Path, redis_url: str, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(tmp_path, redis_url)) as context:
        return sensor(context)


def test_a_stream_group_is_an_asset_with_a_stream_sensor_in_the_definitions(tmp_path: Path, redis_url: str) -> None:
    defs = dg.Definitions.merge(build_definitions([card_windows()]), dg.Definitions(resources=resources(tmp_path, redis_url)))
    spec = next(a for a in defs.assets if isinstance(a, dg.AssetSpec) and a.key == dg.AssetKey(["features", "card_windows"]))
    assert spec.kinds == {"redis", "deltalake"}
    assert spec.metadata["windows"].startswith("txn_count_10m (count, 10m), txn_count_1h (count, 1h)")
    assert defs.resolve_sensor_def("card_windows_stream").name == "card_windows_stream"


def test_a_tick_consumes_the_stream_and_observes_lag_rate_and_last_event(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(3, minutes_ago=i, amount=10.0, merchant_id=i) for i in range(25)])
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(stream_sensor(card_windows()), tmp_path, redis_url, instance)

    observation = result.asset_events[0]
    assert observation.asset_key == dg.AssetKey(["features", "card_windows"])
    metadata = {k: v.value for k, v in observation.metadata.items()}
    assert (metadata["events"], metadata["consumer_lag_events"], metadata["dead_letters"], metadata["offline_rows"]) == (25, 0, 0, 25)
    assert metadata["events_per_second"] > 0
    assert store.get_online_features([{"card_id": 3}], features()).to_dict()["txn_count_1h"] == [25]
    assert len(store.read_group("card_windows")) == 25


def test_a_lag_past_the_bound_alerts_once_until_it_recovers(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(1, minutes_ago=1, amount=1.0) for _ in range(40)])
    sensor = stream_sensor(card_windows(), max_events=10, batch_size=10, max_lag_events=15)
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(sensor, tmp_path, redis_url, instance)
        second = tick(sensor, tmp_path, redis_url, instance, first.cursor)
        third = tick(sensor, tmp_path, redis_url, instance, second.cursor)

    lags = [r.asset_events[0].metadata["consumer_lag_events"].value for r in (first, second, third)]
    assert lags == [30, 20, 10]
    alerts = read_alerts(tmp_path / "alerts.jsonl")
    assert [(a["kind"], a["group"], a["details"]["lag_events"]) for a in alerts] == [("stream_lag", "card_windows", 30)]
    assert json.loads(third.cursor) == {"alerting": False}


def test_while_another_process_consumes_the_sensor_only_observes(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(1, minutes_ago=1, amount=1.0) for _ in range(5)])
    with store.stream_processor("card_windows", consumer="service") as service, dg.DagsterInstance.ephemeral() as instance:
        service.start()
        result = tick(stream_sensor(card_windows()), tmp_path, redis_url, instance)

    metadata = result.asset_events[0].metadata
    assert "events" not in metadata and metadata["consumer_lag_events"].value == 5


def test_a_sensor_with_no_retention_trims_what_both_sinks_stored(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    store.publish_events("card_windows", [transaction(3, minutes_ago=i, amount=1.0) for i in range(12)])
    with dg.DagsterInstance.ephemeral() as instance:
        tick(stream_sensor(card_windows(), retention=timedelta(0)), tmp_path, redis_url, instance)

    assert store.stream("card_windows").length() == 0
    assert len(store.read_group("card_windows")) == 12
