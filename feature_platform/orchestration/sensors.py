"""Landing sensors: launch feature-group runs for the days whose raw files arrived or changed.

One sensor per partitioned raw source watches `<raw_root>/<source>/<day>/*.parquet`
(a folder or an S3 prefix, from the `feature_platform_store` resource). Its cursor holds
a fingerprint per day, so a restarted daemon neither misses a change nor
repeats one; run keys make a tick that crashed before saving its cursor
harmless too. A day `d` feeds partitions `d .. d + lookback` of each group
reading the source (the same mapping as the asset dependency), so a late file
re-runs every partition whose window contains it.
"""

import hashlib
import math
from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.orchestration.assets import backfill_policy, group_key, partitions_def
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.sources.fingerprints import changed_days, day_fingerprints, dump_cursor, list_landed, load_cursor
from feature_platform.sources.landing import RawSource

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def affected_partitions(group: FeatureGroup, day: str, last_key: str | None) -> list[str]:
    """Partitions of `group` whose input window contains raw day `day`, up to `last_key`."""
    assert group.partitions is not None
    first = max(date.fromisoformat(day), group.partitions.start)
    last = date.fromisoformat(day) + timedelta(days=math.ceil(group.lookback / timedelta(days=1)))
    if last_key is None:
        return []
    last = min(last, date.fromisoformat(last_key))
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def contiguous_ranges(keys: Sequence[str], max_length: int) -> list[tuple[str, str]]:
    """Sorted day keys grouped into consecutive runs of at most `max_length` days."""
    ranges: list[tuple[str, str]] = []
    start = previous = None
    length = 0
    for key in sorted(set(keys)):
        day = date.fromisoformat(key)
        if previous is not None and day == previous + timedelta(days=1) and length < max_length:
            previous, length = day, length + 1
            continue
        if start is not None and previous is not None:
            ranges.append((start.isoformat(), previous.isoformat()))
        start = previous = day
        length = 1
    if start is not None and previous is not None:
        ranges.append((start.isoformat(), previous.isoformat()))
    return ranges


def run_request(group: FeatureGroup, first: str, last: str, run_key: str) -> dg.RunRequest:
    """A run of `group` over `first..last`: one partition, or a range run like a backfill's."""
    if first == last:
        return dg.RunRequest(run_key=run_key, asset_selection=[group_key(group)], partition_key=first)
    return dg.RunRequest(
        run_key=run_key, asset_selection=[group_key(group)], tags={RANGE_START: first, RANGE_END: last}
    )


def landing_sensor(
    source: RawSource,
    groups: Sequence[FeatureGroup],
    *,
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """The sensor that runs the partitioned groups reading `source` when its files change."""
    readers = [g for g in groups if g.compute and g.partitions is not None and source.name in g.sources]
    if source.partitions is None or not readers:
        raise ValueError(f"raw source '{source.name}': a landing sensor needs a partitioned source read by a partitioned group")
    definitions = {g.name: partitions_def(g.partitions) for g in readers}

    @dg.sensor(
        name=f"{source.name}_landing",
        description=f"Runs {', '.join(g.name for g in readers)} for the days whose '{source.name}' files arrive or change.",
        asset_selection=dg.AssetSelection.assets(*(group_key(g) for g in readers)),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
    )
    def _sensor(context: dg.SensorEvaluationContext, feature_platform_store: FeatureStoreResource) -> dg.SensorResult:
        seen = load_cursor(context.cursor)
        current = day_fingerprints(list_landed(feature_platform_store.raw_path, source.name))
        last_key = {g.name: definitions[g.name].get_last_partition_key() for g in readers}  # type: ignore[union-attr]
        # A day whose own partition has not closed yet stays unseen, so it is picked up once it has.
        ready = [d for d in changed_days(seen, current) if all(k is not None and d <= k for k in last_key.values())]
        stamp = hashlib.sha256(repr([(d, current[d]) for d in ready]).encode()).hexdigest()[:12]
        requests: list[dg.RunRequest] = []
        for group in readers:
            keys = [k for day in ready for k in affected_partitions(group, day, last_key[group.name])]
            max_length = backfill_policy(group).max_partitions_per_run or len(keys) or 1
            for first, last in contiguous_ranges(keys, max_length):
                requests.append(run_request(group, first, last, f"{source.name}:{group.name}:{first}:{last}:{stamp}"))
        cursor = {day: fp for day, fp in seen.items() if day in current}
        cursor.update({day: current[day] for day in ready})
        if requests:
            context.log.info(f"{source.name}: days {ready} changed; requesting {len(requests)} run(s)")
        return dg.SensorResult(run_requests=requests, cursor=dump_cursor(cursor))

    return _sensor


def landing_sensors(sources: Sequence[RawSource], groups: Sequence[FeatureGroup]) -> list[dg.SensorDefinition]:
    """A landing sensor for every partitioned source that a partitioned group reads."""
    return [
        landing_sensor(s, groups)
        for s in sources
        if s.partitions is not None and any(g.compute and g.partitions and s.name in g.sources for g in groups)
    ]
