"""Stream groups in Dagster: an observable asset per group and a sensor that consumes a bounded batch per tick.

Why a sensor, not a run launched through Pipes: the consumer keeps all of its
state in Redis and Delta (watermarks, lease, tiles), so a tick can consume up
to a time budget and stop without losing anything; it needs no run slot, no
run that never ends, and every tick shows in the UI with what it did. Each
tick records an observation of `["features", group]` with the consumer lag,
events per second and the last event time, and sends one alert when the lag
passes a bound (again only after it has recovered). For lower latency run
`feature-platform stream GROUP` as a service: then the sensor finds the
consumer lease taken and only observes and alerts.
"""

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg

from feature_platform.definitions.aggregations import StreamFeatureGroup, window_label
from feature_platform.errors import FeaturePlatformError
from feature_platform.orchestration.alerting import AlertSinksResource
from feature_platform.orchestration.assets import domain, group_key, owners
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.quality.alerts import Alert
from feature_platform.sources.streams import StreamLag
from feature_platform.streaming.processor import CONSUMER_GROUP, DEFAULT_STREAM_RETENTION, StreamStats

SENSOR_CONSUMER = "dagster-sensor"


def stream_asset_spec(group: StreamFeatureGroup) -> dg.AssetSpec:
    """The asset of a stream group: fed by its consumer, observed by its sensor."""
    windows = ", ".join(f"{a.name} ({a.function}, {window_label(a.window)})" for a in group.aggregations)
    return dg.AssetSpec(
        group_key(group),
        group_name=domain(group),
        description=group.description or f"Windows over the stream '{group.stream_name}'",
        owners=owners(group.owner),
        tags={k: v for k, v in group.tags.items() if k != "domain"},
        kinds={"redis", "deltalake"},
        metadata={"feature_group_version": group.version, "join_keys": ", ".join(group.join_keys),
                  "stream": group.stream_name, "windows": windows, "tile": window_label(group.tile)},
    )


def observation_metadata(stats: StreamStats | None, lag: StreamLag) -> dict[str, Any]:
    """Consumer lag (entries not yet applied, and seconds), events per second, last event time, dead letters."""
    metadata: dict[str, Any] = {
        "consumer_lag_events": lag.behind if lag.behind is not None else -1,
        "consumer_lag_seconds": lag.seconds,
        "last_entry_id": lag.last_entry,
    }
    if stats is not None:
        metadata.update({
            "events": stats.events, "events_per_second": stats.events_per_second, "dead_letters": stats.dead_letters,
            "offline_rows": stats.offline_rows,
            "last_event_time": stats.last_event_time.isoformat() if stats.last_event_time else "none this tick",
        })
    return metadata


def stream_sensor(
    group: StreamFeatureGroup,
    *,
    max_seconds: float = 20.0,
    max_events: int | None = None,
    batch_size: int = 10_000,
    retention: timedelta = DEFAULT_STREAM_RETENTION,
    max_lag_events: int = 100_000,
    max_lag_seconds: float = 60.0,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """The sensor consuming `group`'s stream for up to `max_seconds` (or `max_events`) per tick, then observing it.

    `retention`: how long the stream keeps entries both sinks stored (see `StreamProcessor`).
    """

    @dg.sensor(
        name=f"{group.name}_stream",
        description=f"Consumes the stream of '{group.name}' (up to {max_seconds:g} s per tick) and reports its lag; "
        f"alerts when more than {max_lag_events} events or {max_lag_seconds:g} s behind.",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        feature_platform_store: FeatureStoreResource,
        feature_platform_alerts: AlertSinksResource,
    ) -> dg.SensorResult:
        store = feature_platform_store.build_store([group])
        stats = None
        try:
            with store.stream_processor(group.name, consumer=SENSOR_CONSUMER, batch_size=batch_size, retention=retention) as processor:
                stats = processor.run(max_seconds=max_seconds, max_events=max_events, until_idle=max_events is None)
            lag = stats.lag
            assert lag is not None
        except FeaturePlatformError as exc:
            if "already consumed" not in str(exc):
                raise
            context.log.info(f"{group.name}: another process consumes the stream; observing only")
            lag = store.stream(group.name).lag(CONSUMER_GROUP)
        behind = lag.behind or 0
        lagging = behind > max_lag_events or lag.seconds > max_lag_seconds
        alerting = json.loads(context.cursor or "{}").get("alerting", False)
        if lagging and not alerting:
            alert = Alert(
                id=f"stream_lag:{group.name}:{lag.last_delivered}",
                kind="stream_lag",
                severity="WARN",
                group=group.name,
                title=f"stream consumer of {group.name} is behind",
                message=f"{behind} events and {lag.seconds:.1f} s behind the stream (bounds: {max_lag_events} events, "
                f"{max_lag_seconds:g} s); online windows are stale until it catches up",
                details={"lag_events": behind, "lag_seconds": lag.seconds, "at": datetime.now(timezone.utc).isoformat()},
            )
            for sink in feature_platform_alerts.sinks(feature_platform_store.home).values():
                sink.send(alert)
        observation = dg.AssetObservation(asset_key=group_key(group), metadata=observation_metadata(stats, lag))
        return dg.SensorResult(asset_events=[observation], cursor=json.dumps({"alerting": lagging}))

    return _sensor
