"""A tiny repository for the quality tests: a daily raw source whose amounts a test can break or shift."""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, RawSource
from feature_platform.definitions.rules import DriftSettings, Rule
from feature_platform.orchestration import AlertSinksResource, FeatureStoreResource, build_definitions

START = "2024-05-01"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
user = Entity("user", join_keys={"user_id": "int64"})


def payments(*, negative_on: tuple[str, ...] = (), large_on: tuple[str, ...] = (), shift_from: str | None = None, rows: int = 400) -> Callable[[datetime, datetime], pd.DataFrame]:
    """`produce` of a raw source: `rows` payments a day, negative on some days, too large or shifted on others."""

    def produce(start: datetime, end: datetime) -> pd.DataFrame:
        day = start.date().isoformat()
        rng = np.random.default_rng(start.toordinal())
        amount = rng.lognormal(3.0, 0.5, rows)
        if shift_from is not None and day >= shift_from:
            amount *= 3.0
        if day in negative_on:
            amount[:3] *= -1
        if day in large_on:
            amount[:2] = 50_000.0
        return pd.DataFrame({"user_id": np.arange(rows, dtype="int64"), "amount": amount, "event_time": pd.Timestamp(start) + pd.Timedelta(hours=12)})

    return produce


def payment_features(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    return inputs["payments"].rename(columns={"amount": "last_amount"})[["user_id", "event_time", "last_amount"]]


def payment_group(**quality: object) -> FeatureGroup:
    """The group under test: ERROR if an amount is negative, WARN if one is above 10,000 (options override)."""
    options: dict[str, object] = dict(
        rules=[
            Rule.in_range("last_amount", min=0, description="Amounts are never negative."),
            Rule.in_range("last_amount", max=10_000, severity="WARN", name="amount_plausible", description="Unusually large."),
        ],
        drift=DriftSettings(reference_partitions=3, max_drifted_share=0.5),
        compute=payment_features,
    )
    options.update(quality)
    return FeatureGroup(
        "payment_features",
        entities=[user],
        features=[Feature("last_amount", "float64")],
        partitions=DailyPartitions(START),
        sources=["payments"],
        **options,  # type: ignore[arg-type]
    )


def repository(group: FeatureGroup, produce: Callable[[datetime, datetime], pd.DataFrame]) -> dg.Definitions:
    """Assets of the raw source, the group and its drift, plus a downstream asset that records each run it saw."""
    source = RawSource("payments", partitions=DailyPartitions(START), produce=produce)
    defs = build_definitions([group], [], [source])

    @dg.asset(key=["online", group.name], deps=[["features", group.name]], partitions_def=dg.DailyPartitionsDefinition(START))
    def online_sync(context: dg.AssetExecutionContext, feature_platform_store: FeatureStoreResource) -> None:
        log = Path(feature_platform_store.home) / "downstream.log"
        with log.open("a") as handle:
            handle.write(",".join(context.partition_keys) + "\n")

    # The recorder stands in for the real `["online", group]` sync asset, which would need Redis.
    built = [a for a in defs.assets if a.key != dg.AssetKey(["online", group.name])]
    repository_defs = dg.Definitions(assets=[*built, online_sync])
    GROUPS_OF[id(repository_defs)] = [group]
    return repository_defs


# The groups of each `repository(...)`, applied to the run's home before `materialize` runs them.
GROUPS_OF: dict[int, list[FeatureGroup]] = {}


def resources(home: Path, webhook_url: str | None = None) -> dict[str, object]:
    return {
        "feature_platform_store": FeatureStoreResource(home=str(home), project="test"),
        "feature_platform_alerts": AlertSinksResource(webhook_url=webhook_url, alert_file=str(home / "alerts.jsonl")),
    }


def assets_of(defs: dg.Definitions, *namespaces: str) -> list[dg.AssetsDefinition]:
    return [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and a.key.path[0] in namespaces]


def materialize(defs: dg.Definitions, home: Path, namespaces: tuple[str, ...], first: str, last: str | None = None, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """One run of the assets in `namespaces` over the partitions `first..last` (one partition when `last` is None)."""
    selection = assets_of(defs, *namespaces)
    FeatureStoreResource(home=str(home), project="test").build_store(GROUPS_OF[id(defs)]).apply()
    if last is None:
        return dg.materialize(selection, partition_key=first, resources=resources(home), instance=instance, raise_on_error=False)
    tags = {RANGE_START: first, RANGE_END: last}
    return dg.materialize(selection, tags=tags, resources=resources(home), instance=instance, raise_on_error=False)
