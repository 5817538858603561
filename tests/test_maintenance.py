"""Compaction and vacuum keep the current table and every protected version readable."""

from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from feature_platform import FeatureGroup, FeatureStore, FeatureView
from feature_platform.offline.maintenance import maintain_table, manifest_versions
from tests.conftest import user_rows

RETAIN_NOTHING = pd.Timedelta(0).to_pytimedelta()


def overwrite_three_times(store: FeatureStore) -> list[pd.DataFrame]:
    """Versions 0, 1, 2 each replace 2024-05-01 with different counts; returns what each held."""
    frames = [user_rows("2024-05-01", [1, 2], txn_count=c) for c in (10, 20, 30)]
    for frame in frames:
        store.write_partition("user_stats", "2024-05-01", frame)
    return frames


def stored_counts(store: FeatureStore, as_of: int | None = None) -> list[int]:
    return store.read_group("user_stats", as_of=as_of).sort_values("user_id")["txn_count"].tolist()


def test_vacuum_keeps_a_protected_version_readable(store: FeatureStore, user_stats: FeatureGroup) -> None:
    overwrite_three_times(store)
    result = maintain_table(store.offline, user_stats, protected_versions={0}, retention=RETAIN_NOTHING)
    assert result is not None and result.files_vacuumed == 1  # version 1's file: neither current nor protected
    assert stored_counts(store, as_of=0) == [10, 11]
    assert stored_counts(store) == [30, 31]


def test_vacuum_without_protection_deletes_replaced_versions(store: FeatureStore, user_stats: FeatureGroup) -> None:
    overwrite_three_times(store)
    maintain_table(store.offline, user_stats, retention=RETAIN_NOTHING)
    with pytest.raises(Exception):
        stored_counts(store, as_of=0)
    assert stored_counts(store) == [30, 31]


def test_the_default_retention_keeps_recent_versions(store: FeatureStore, user_stats: FeatureGroup) -> None:
    overwrite_three_times(store)
    result = maintain_table(store.offline, user_stats)
    assert result is not None and result.files_vacuumed == 0 and result.retention_hours == 168
    assert stored_counts(store, as_of=1) == [20, 21]


def test_compaction_merges_small_files_of_a_partition_without_changing_rows(store: FeatureStore, user_stats: FeatureGroup) -> None:
    for user_id in range(5):
        store.ingest("user_stats", user_rows("2024-05-01", [user_id]))
    before = store.read_group("user_stats").sort_values("user_id").reset_index(drop=True)
    result = maintain_table(store.offline, user_stats, retention=RETAIN_NOTHING)
    assert result is not None and (result.files_compacted, result.files_written) == (5, 1)
    assert len(DeltaTable(store.offline.table_uri(user_stats)).file_uris()) == 1
    pd.testing.assert_frame_equal(store.read_group("user_stats").sort_values("user_id").reset_index(drop=True), before)


def test_a_group_without_a_table_is_skipped(store: FeatureStore, user_stats: FeatureGroup) -> None:
    assert maintain_table(store.offline, user_stats) is None


def test_manifests_name_the_versions_to_protect_per_group() -> None:
    manifests = [{"group_versions": {"user_stats": 3, "merchants": 1}}, {"group_versions": {"user_stats": 5, "unread": None}}]
    assert manifest_versions(manifests) == {"user_stats": {3, 5}, "merchants": {1}}


def test_the_maintenance_job_protects_versions_listed_in_training_manifests(tmp_path: Path) -> None:
    import dagster as dg

    from feature_platform.orchestration import FeatureStoreResource, build_definitions
    from tests.ops_fixtures import GROUPS, clicks, write_days

    resource = FeatureStoreResource(project="ops", home=str(tmp_path))
    offline_root = str(tmp_path / "offline")
    view = FeatureView("clicks_model", features=["daily_clicks:clicks"])
    [first] = write_days(offline_root, ["2024-05-03"])
    resource.build_store(GROUPS, [view]).apply()
    labels = pd.DataFrame({"user_id": [1], "event_time": [pd.Timestamp("2024-05-03 23:00")]})
    resource.build_store(GROUPS, [view]).create_training_dataset("clicks_model", labels)
    for _ in range(2):
        write_days(offline_root, ["2024-05-03"])
    job = dg.Definitions.merge(
        build_definitions(GROUPS, [view], sources=[clicks]), dg.Definitions(resources={"feature_platform_store": resource})
    ).resolve_job_def("maintain_feature_tables")
    result = job.execute_in_process(run_config={"ops": {"maintain_daily_clicks": {"config": {"retention_hours": 0}}}})
    assert result.success
    observed = [e.event_specific_data.asset_observation for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    assert [(o.asset_key.path, o.metadata["maintenance"].value["protected_versions"]) for o in observed] == [(["features", "daily_clicks"], [first])]
    store = resource.build_store(GROUPS)
    assert len(store.read_group("daily_clicks", as_of=first)) == 2
    with pytest.raises(Exception):
        store.read_group("daily_clicks", as_of=first + 1)
