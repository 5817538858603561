"""`FeatureStore`: the client for writes, reads, retrieval and discovery.

Built from arguments, or from a repository's definitions package (named in its
`pyproject.toml`) and the environment with `FeatureStore.from_repo()`. Pandas in and out; Arrow inside.
"""

import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from feature_platform import applying
from feature_platform.applying import AppliedDefinitions, Retirement
from feature_platform.definitions.aggregations import StreamFeatureGroup, is_stream_group
from feature_platform.definitions.changes import Plan
from feature_platform.definitions.concepts import FeatureGroup, FeatureView, check_name
from feature_platform.definitions.contract import conform
from feature_platform.definitions.pandas_types import table_to_pandas
from feature_platform.definitions.records import group_from_record
from feature_platform.definitions.references import Catalog
from feature_platform.definitions.repository import load_repository
from feature_platform.errors import ArgumentError, FeatureReferenceError
from feature_platform.offline.registry import RegistryStore
from feature_platform.offline.store import OfflineStore, WriteResult
from feature_platform.online import endpoint
from feature_platform.online.reads import OnlineResponse, ReadPlan, build_plan, read_online
from feature_platform.online.store import OnlineStore
from feature_platform.online.sync import SyncReport, sync_group
from feature_platform.quality.gate import check_gate
from feature_platform.retrieval.point_in_time import get_historical_features
from feature_platform.retrieval.splits import Split
from feature_platform.retrieval.training import (
    TrainingDataset,
    create_training_dataset,
    list_training_datasets,
    load_training_dataset,
    rebuild_training_dataset,
)
from feature_platform.sources.landing import RawSource
from feature_platform.sources.streams import RedisStream
from feature_platform.streaming.processor import StreamProcessor, stream_for

DEFAULT_HOME = ".feature_platform"


class FeatureStore:
    """The feature platform client for one project.

    >>> store = FeatureStore(groups=[user_stats], offline_root="/tmp/offline")
    >>> store.write_partition("user_stats", "2024-05-01", frame)
    """

    def __init__(
        self,
        groups: Sequence[FeatureGroup] = (),
        views: Sequence[FeatureView] = (),
        *,
        offline_root: str | Path = f"{DEFAULT_HOME}/offline",
        online_url: str | None = None,
        project: str = "default",
        sources: Sequence[RawSource] = (),
        storage_options: dict[str, str] | None = None,
        home: str | Path = DEFAULT_HOME,
        environment: str | None = None,
    ) -> None:
        self.project = check_name("project", project)
        self.environment = endpoint.environment(environment)
        self.sources = {s.name: s for s in sources}
        self.offline = OfflineStore(str(offline_root), project=project, storage_options=storage_options)
        self.registry = AppliedDefinitions(RegistryStore(self.offline))
        self.catalog = Catalog(groups, views, applied_view_versions=self.registry.view_versions)
        self.online_url = online_url
        self.home = Path(home)
        self._online: OnlineStore | None = None
        self._read_plans: dict[int, tuple[object, ReadPlan]] = {}
        self._registry_check_s = applying.registry_check_s()
        self.registry.on_change(self._forget_applied)

    @classmethod
    def from_repo(cls, path: str | Path = ".") -> "FeatureStore":
        """The store of the repository at `path`: its package's definitions (loaded afresh), configured by the environment.

        Reads `FEATURE_PLATFORM_OFFLINE_ROOT` (default `<path>/.feature_platform/offline`),
        `FEATURE_PLATFORM_PROJECT` (default `default`), `FEATURE_PLATFORM_REDIS_URL`
        (default: the embedded Redis server under `<path>/.feature_platform/redis`) and
        `FEATURE_PLATFORM_ENV` (`production` refuses the embedded default).
        """
        repo = Path(path).resolve()
        definitions = load_repository(repo)
        home = Path(os.environ.get("FEATURE_PLATFORM_HOME", repo / DEFAULT_HOME))
        return cls(
            groups=definitions.feature_groups,
            views=definitions.feature_views,
            sources=definitions.raw_sources,
            offline_root=os.environ.get("FEATURE_PLATFORM_OFFLINE_ROOT", str(home / "offline")),
            online_url=os.environ.get("FEATURE_PLATFORM_REDIS_URL") or None,
            project=os.environ.get("FEATURE_PLATFORM_PROJECT", "default"),
            home=home,
        )

    # Definitions

    def list_groups(self) -> list[str]:
        return sorted(self.catalog.groups)

    def list_views(self) -> list[str]:
        return sorted(self.catalog.views)

    def group(self, name: str, version: int | None = None) -> FeatureGroup:
        """A group's definition: the latest defined version, or `version`."""
        return self.catalog.group(name, version)

    def applied_group(self, name: str, version: int | None = None) -> FeatureGroup:
        """The group, after checking that exactly this definition is applied (DefinitionMismatchError names the difference)."""
        group = self.catalog.group(name, version)
        self.registry.require_group(group)
        return group

    def require_applied(self, features: "Sequence[str] | FeatureView | str", full_feature_names: bool = False) -> None:
        """Raise DefinitionMismatchError unless the groups (and view) these features read are applied as defined."""
        resolved = self.catalog.resolve(features, full_feature_names)
        for selection in resolved.selections:
            self.registry.require_group(selection.group)
        name = features.name if isinstance(features, FeatureView) else features if isinstance(features, str) else None
        view = self.catalog.views.get(name) if name else None
        if view is not None:
            self.registry.require_view(view, {s.group.name: s.group.version for s in resolved.selections})

    # Plan, apply, retire

    def plan(self) -> Plan:
        """What `apply` would do, per group version and view (`plan.refused` lists what it would refuse)."""
        return applying.make_plan(self.catalog, self.offline, self.registry.snapshot(refresh=True).state)

    def apply(self) -> Plan:
        """Record the definitions in the registry and evolve tables in place; raises ApplyRefused with the plan otherwise."""
        return applying.apply(self.catalog, self.offline, self.registry)

    def _forget_applied(self) -> None:
        """Drop what was derived from the applied state (view pins, resolutions, read plans) when it changes."""
        self.catalog.forget_applied()
        self._read_plans.clear()

    def retire(
        self, group_name: str, version: int, *, delete_offline: bool = False, force: bool = False, dry_run: bool = False
    ) -> Retirement:
        """Remove a group version's online keys and mark it retired (its table too with `delete_offline`)."""
        online = None if dry_run else self.online
        return applying.retire(
            self.catalog, self.offline, online, self.registry, group_name, version,
            delete_offline=delete_offline, force=force, dry_run=dry_run,
        )

    def registry_history(self) -> list[dict[str, Any]]:
        """Every apply and retire of this project, newest first: when, who, what changed."""
        return self.registry.store.history()

    def _batch_group(self, name: str, action: str, version: int | None = None) -> FeatureGroup:
        """The applied group `name`, refusing a stream group: its tables are written only by its stream consumer."""
        group = self.applied_group(name, version)
        if is_stream_group(group):
            raise ArgumentError(
                f"feature group '{name}' is a stream group: {action} would bypass its windows; "
                f"publish its events with publish_events('{name}', events) and run its consumer instead"
            )
        return group

    def describe(self, group_name: str) -> dict[str, Any]:
        """A group's definition and storage state: schema, owner, tags, partitions, Delta version."""
        group = self.group(group_name)
        history = self.offline.history(group)
        return {
            "name": group.name,
            "version": group.version,
            "description": group.description,
            "owner": group.owner,
            "tags": dict(group.tags),
            "entities": [e.name for e in group.entities],
            "join_keys": group.join_keys,
            "event_time": group.event_time,
            "created_time": group.created_time,
            "ttl_seconds": group.ttl.total_seconds() if group.ttl else None,
            "online": group.online,
            "partitioned": group.partitions is not None,
            "partition_start": group.partitions.start.isoformat() if group.partitions else None,
            "features": [
                {"name": f.name, "dtype": str(f.arrow_type), "description": f.description} for f in group.features
            ],
            "rules": [rule.summary() for rule in group.rules],
            "table_uri": self.offline.table_uri(group),
            "delta_version": history[0]["version"] if history else None,
            "last_write": history[0]["timestamp"].isoformat() if history else None,
        }

    # Offline writes and reads

    def write_partition(
        self,
        group_name: str,
        partition_key: str | None,
        df: pd.DataFrame,
        *,
        commit_metadata: dict[str, str] | None = None,
        validate: bool = True,
        version: int | None = None,
    ) -> WriteResult:
        """Replace one daily partition (or, for an unpartitioned group with `None`, the whole table).

        The group's ERROR rules gate the write (`QualityGateError`, nothing written); `validate=False` bypasses them.
        `version` picks a group version defined beside newer ones (default: the latest).
        """
        group = self._batch_group(group_name, "write_partition", version)
        return self.offline.write_partition(group, partition_key, df, commit_metadata=commit_metadata, before_commit=_gate(group, validate))

    def ingest(
        self,
        group_name: str,
        df: pd.DataFrame,
        *,
        commit_metadata: dict[str, str] | None = None,
        validate: bool = True,
        version: int | None = None,
    ) -> WriteResult:
        """Append rows that may span partitions, checked against the group's contract and ERROR rules first.

        Each partition's rows are validated; one blocked partition refuses the whole ingest
        (`QualityGateError`, nothing written). `validate=False` bypasses the rules, never the contract.
        """
        group = self._batch_group(group_name, "ingest", version)
        return self.offline.append(group, df, commit_metadata=commit_metadata, before_commit=_gate(group, validate))

    def read_group(
        self,
        group_name: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        as_of: int | datetime | str | None = None,
        *,
        version: int | None = None,
    ) -> pd.DataFrame:
        """Rows with `start <= event_time < end` as stored, optionally as of a Delta version or a time.

        A time before the table's first commit reads an empty frame, as a read then did.
        """
        group = self.applied_group(group_name, version)
        return table_to_pandas(self.offline.read(group, start=start, end=end, as_of=as_of, columns=group.input_columns))

    def history(self, group_name: str, *, version: int | None = None) -> list[dict[str, Any]]:
        """Delta versions of a group's table, newest first."""
        return self.offline.history(self.group(group_name, version))

    # Online store

    @property
    def online(self) -> OnlineStore:
        """The Redis online store: `online_url`, else (in development only) the embedded server under `home`."""
        if self._online is None:
            from feature_platform.online.redis_server import ensure_server

            url = endpoint.online_url(self.online_url, self.environment, lambda: ensure_server(self.home))
            self._online = OnlineStore(url, project=self.project)
        return self._online

    def online_endpoint(self) -> dict[str, Any]:
        """The Redis this store talks to (kind, host, port, TLS, embedded), without credentials: for health checks."""
        return endpoint.describe(self.online.url, embedded=not self.online_url)

    def sync_to_online(
        self,
        group_name: str,
        partition_key: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        *,
        version: int | None = None,
    ) -> SyncReport:
        """Copy the latest offline row per entity (one partition, `[start, end)`, or all) into Redis.

        >>> store.sync_to_online("user_stats", "2024-05-01").rows_written
        """
        group = self._batch_group(group_name, "sync_to_online", version)
        return sync_group(self.offline, self.online, group, partition_key=partition_key, start=start, end=end)

    def get_online_features(
        self,
        entity_rows: Any,
        features: "Sequence[str] | FeatureView | str",
        *,
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        """The latest synced feature vector of each entity row, with a status per value.

        >>> store.get_online_features([{"user_id": 1}], ["user_stats:txn_count"]).to_dict()
        """
        return read_online(self.online, self.online_read_plan(features, full_feature_names), entity_rows)

    def online_read_plan(self, features: "Sequence[str] | FeatureView | str", full_feature_names: bool = False) -> ReadPlan:
        """The prepared online read of `features` (resolved once per request shape, then cached).

        At most every `FEATURE_PLATFORM_REGISTRY_CHECK_S` seconds it asks whether another process
        changed the registry; if so the plans are built (and checked) again.
        """
        self.registry.current(self._registry_check_s)
        resolved = self.catalog.resolve(features, full_feature_names)
        cached = self._read_plans.get(id(resolved))
        if cached is None or cached[0] is not resolved:
            self.require_applied(features, full_feature_names)  # once per request shape: the per-call cost is nil
            cached = self._read_plans[id(resolved)] = (resolved, build_plan(resolved, self.project, hash_tag=self.online.hash_tag))
        return cached[1]

    def push(
        self,
        group_name: str,
        df: pd.DataFrame,
        to: Literal["online", "offline", "online_and_offline"] = "online",
        *,
        validate: bool = True,
    ) -> int:
        """Write fresh rows (from a stream or an app) after the contract check and the quality gate; returns rows accepted.

        Offline rows are appended to the Delta table first, then online rows replace stored
        values only when newer, as a sync would. A push retried after an error stores its
        offline rows once. `validate=False` bypasses the group's ERROR rules.
        """
        if not isinstance(to, str) or to not in ("online", "offline", "online_and_offline"):
            raise ArgumentError(f"push to must be 'online', 'offline' or 'online_and_offline', got {to!r}")
        group = self._batch_group(group_name, "push")
        if to != "offline" and not group.online:
            raise FeatureReferenceError(f"feature group '{group_name}' is not online (online=False); push to='offline'")
        now = datetime.now(timezone.utc)
        table = conform(group, df, written_at=now)
        if validate:
            check_gate(group, table)
        if to != "online":
            self.offline.append_table(group, table, idempotent=True)
        if to != "offline":
            # Alone, a push runs ahead of the offline store; with it, the value comes from its partition.
            self.online.write(group, table, now=now, pushed=to == "online")
        return table.num_rows

    # Streams

    def _stream_group(self, group_name: str) -> StreamFeatureGroup:
        group = self.group(group_name)
        if not isinstance(group, StreamFeatureGroup):
            raise ArgumentError(f"feature group '{group_name}' is not a stream group; declare it as StreamFeatureGroup(...)")
        return group

    def stream(self, group_name: str) -> RedisStream:
        """The Redis stream of a stream group (on the online store's Redis): publish, lag, dead letters."""
        return stream_for(self.online, self._stream_group(group_name))

    def publish_events(self, group_name: str, events: "Sequence[dict[str, Any]]") -> list[str]:
        """Append events to a stream group's stream; returns their entry ids.

        >>> store.publish_events("card_windows", [{"card_id": 7, "event_time": datetime.now(timezone.utc), "amount": 12.5}])
        """
        return self.stream(group_name).publish(events)

    def stream_processor(self, group_name: str, **options: Any) -> StreamProcessor:
        """The consumer of a stream group's stream (see `StreamProcessor` for `options`).

        >>> store.stream_processor("card_windows", consumer="worker-1").run(until_idle=True).as_dict()
        """
        group = self._stream_group(group_name)
        self.registry.require_group(group)
        return StreamProcessor(self.online, self.offline, group, stream_for(self.online, group), **options)

    # Point-in-time retrieval and training datasets

    def build_join_index(self, group_name: str) -> int | None:
        """Sort the group's current table version for point-in-time joins (what maintenance does after its
        pass): later joins of that version are lookups. Returns the rows indexed; None if nothing to index."""
        group = self.group(group_name)
        self.registry.require_group(group)
        return self.offline.build_join_index(group)

    def get_historical_features(
        self,
        entity_df: pd.DataFrame,
        features: "Sequence[str] | FeatureView | str",
        *,
        full_feature_names: bool = False,
        as_of: Any = None,
        timestamp_column: str = "event_time",
        engine: Literal["duckdb", "spark"] = "duckdb",
        spark: Any = None,
    ) -> Any:
        """Point-in-time join of `features` (references, a view or its name) onto the entity rows.

        `engine="duckdb"` (default) returns a pandas DataFrame. `engine="spark"` joins in Spark
        (`spark`: a SparkSession, else the active one or one from Spark's configuration; the
        entity frame may be a Spark DataFrame) and returns a Spark DataFrame in entity row order.

        >>> store.get_historical_features(entities, ["user_stats:txn_count"])
        """
        self.require_applied(features, full_feature_names)
        if engine == "spark":
            from feature_platform.retrieval.spark import get_historical_features_spark

            return get_historical_features_spark(
                self.catalog, self.offline, entity_df, features, spark=spark,
                full_feature_names=full_feature_names, as_of=as_of, timestamp_column=timestamp_column,
            ).frame
        if engine != "duckdb":
            raise ArgumentError(f"engine must be 'duckdb' or 'spark', got {engine!r}")
        return get_historical_features(
            self.catalog, self.offline, entity_df, features,
            full_feature_names=full_feature_names, as_of=as_of, timestamp_column=timestamp_column,
        ).frame

    def create_training_dataset(
        self,
        view: "FeatureView | str",
        entity_df: pd.DataFrame,
        *,
        name: str | None = None,
        split: Split | None = None,
        description: str | None = None,
        label: str | None = None,
        timestamp_column: str = "event_time",
        full_feature_names: bool = False,
        as_of: Any = None,
        engine: Literal["duckdb", "spark"] = "duckdb",
        spark: Any = None,
    ) -> TrainingDataset:
        """Retrieve `view` for `entity_df` and store it as the next version of a training dataset.

        `engine="spark"` joins in Spark and has Spark write the dataset's Delta table.

        >>> store.create_training_dataset("fraud_detection", labels, label="is_fraud", split=RandomSplit({"train": .8, "test": .2}))
        """
        self.require_applied(view, full_feature_names)
        return create_training_dataset(
            self.catalog, self.offline, view, entity_df, name=name, split=split, description=description, label=label,
            timestamp_column=timestamp_column, full_feature_names=full_feature_names, as_of=as_of, engine=engine, spark=spark,
        )

    def load_training_dataset(
        self,
        name: str,
        version: int | None = None,
        split: str | None = None,
        *,
        format: str = "pandas",
        label: str | None = None,
        batch_size: int = 256,
    ) -> Any:
        """A stored training dataset (latest version unless given) as pandas, arrow, numpy `(X, y)` or torch."""
        return load_training_dataset(self.offline, name, version, split, format=format, label=label, batch_size=batch_size)

    def rebuild_training_dataset(self, name: str, version: int) -> pd.DataFrame:
        """Recompute a stored training dataset from the Delta versions its manifest recorded."""
        return rebuild_training_dataset(self._catalog_with_applied(), self.offline, name, version)

    def _catalog_with_applied(self) -> Catalog:
        """The catalog plus every applied group version the repository no longer defines (to read old tables)."""
        state = self.registry.snapshot(refresh=True).state
        extra = [
            group_from_record(entry["record"])
            for name, versions in state.groups.items()
            for version, entry in versions.items()
            if version not in self.catalog.versions.get(name, {})
        ]
        if not extra:
            return self.catalog
        groups = [g for versions in self.catalog.versions.values() for g in versions.values()]
        return Catalog([*groups, *extra], list(self.catalog.views.values()), applied_view_versions=self.registry.view_versions)

    def list_training_datasets(self) -> list[dict[str, Any]]:
        """Manifests of every stored training dataset version, by name then version."""
        return list_training_datasets(self.offline)


def _gate(group: FeatureGroup, validate: bool) -> Callable[[pa.Table], None] | None:
    """The quality gate a write runs on its conformed rows, or None when the caller bypasses it."""
    return partial(check_gate, group) if validate else None
