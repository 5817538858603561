"""The platform's definitions merge into a team's code location that has its own assets, sensor and resources."""

from pathlib import Path

import dagster as dg
import pandas as pd

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, RawSource
from feature_platform.orchestration import AUTOMATION_SENSOR, FeatureStoreResource, build_definitions

user = Entity("user", join_keys={"user_id": "int64"})
clicks = RawSource("clicks", partitions=DailyPartitions(start="2024-05-01"))


def count_clicks(inputs: dict[str, pd.DataFrame], start, end) -> pd.DataFrame:
    return inputs["clicks"].groupby("user_id", as_index=False).size().rename(columns={"size": "clicks"}).assign(event_time=start)


click_counts = FeatureGroup(
    "click_counts", entities=[user], features=[Feature("clicks", "int64")], partitions=DailyPartitions(start="2024-05-01"),
    compute=count_clicks, sources=["clicks"],
)


@dg.asset(group_name="team", automation_condition=dg.AutomationCondition.eager())
def orders() -> pd.DataFrame:
    return pd.DataFrame({"order_id": [1, 2]})


@dg.asset(group_name="team", deps=[orders], automation_condition=dg.AutomationCondition.eager())
def order_report() -> None:
    return None


def team_location(tmp_path: Path, sensor_target: dg.AssetSelection) -> dg.Definitions:
    """A team's code location: two assets, its own automation sensor, and resources named as teams name them."""
    return dg.Definitions(
        assets=[orders, order_report],
        sensors=[dg.AutomationConditionSensorDefinition("team_automation", target=sensor_target)],
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io")), "feature_store": dg.ResourceDefinition.none_resource()},
    )


def targets(defs: dg.Definitions, sensor: str) -> set[str]:
    selection = defs.resolve_sensor_def(sensor).asset_selection
    return {k.to_user_string() for k in selection.resolve(defs.resolve_asset_graph())}


def platform(tmp_path: Path, **options) -> dg.Definitions:
    store = FeatureStoreResource(home=str(tmp_path / "home"), project="test")
    store.build_store([click_counts]).apply()
    return dg.Definitions.merge(
        build_definitions([click_counts], sources=[clicks], **options), dg.Definitions(resources={"feature_platform_store": store})
    )


def test_merged_with_a_team_automation_sensor_each_sensor_evaluates_its_own_assets(tmp_path: Path) -> None:
    merged = dg.Definitions.merge(team_location(tmp_path, dg.AssetSelection.groups("team")), platform(tmp_path))

    dg.Definitions.validate_loadable(merged)
    assert targets(merged, "team_automation") == {"orders", "order_report"}
    assert targets(merged, AUTOMATION_SENSOR) == {"features/click_counts", "drift/click_counts", "online/click_counts"}


def test_left_out_on_request_a_team_sensor_over_everything_covers_the_platform_too(tmp_path: Path) -> None:
    merged = dg.Definitions.merge(
        team_location(tmp_path, dg.AssetSelection.all()), platform(tmp_path, automation_sensor=False)
    )

    dg.Definitions.validate_loadable(merged)
    assert [s.name for s in merged.sensors or [] if isinstance(s, dg.AutomationConditionSensorDefinition)] == ["team_automation"]
    assert targets(merged, "team_automation") >= {"orders", "features/click_counts"}


def test_the_platform_resource_keys_are_namespaced_beside_the_team_ones(tmp_path: Path) -> None:
    merged = dg.Definitions.merge(team_location(tmp_path, dg.AssetSelection.groups("team")), platform(tmp_path))

    assert set(merged.resources or {}) == {"io_manager", "feature_store", "feature_platform_store"}


def test_a_merged_location_materializes_the_team_assets_and_the_feature_group(tmp_path: Path) -> None:
    from feature_platform.sources.landing import write_source

    merged = dg.Definitions.merge(team_location(tmp_path, dg.AssetSelection.groups("team")), platform(tmp_path))
    write_source(tmp_path / "home" / "raw", clicks, pd.Timestamp("2024-05-01").date(),
                 pd.DataFrame({"user_id": [1, 1, 2], "event_time": pd.Timestamp("2024-05-01 10:00", tz="UTC")}))
    feature_asset = next(a for a in merged.assets or [] if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey(["features", "click_counts"]))
    team = dg.materialize([orders, order_report], resources=merged.resources)
    group = dg.materialize([feature_asset], partition_key="2024-05-01", resources=merged.resources)

    assert team.success and group.success
    assert group.asset_materializations_for_node(feature_asset.node_def.name)[0].metadata["dagster/row_count"].value == 2
