"""What follows a feature group: checks in its run, everything downstream by declarative automation.

A feature group runs from its schedule, its landing sensor, a backfill or the
UI. Its asset checks run in that same run (they are selected with the asset),
and a blocking ERROR check stops the run before anything downstream. Every
asset downstream of a feature group (drift monitors, online sync, ...) gets
`FOLLOW_FEATURE_GROUPS` unless it sets its own condition: it materializes the
partitions whose feature group partition was updated, once its blocking checks
passed, whoever launched the upstream run. Declarative automation rather than
one job per group with its downstream assets, because a job only covers the
runs it launches: a sensor run, a UI re-run or a backfill would skip drift and
online sync.
"""

from collections.abc import Sequence

import dagster as dg

AUTOMATION_SENSOR = "feature_platform_automation"

# Not `all_deps_blocking_checks_passed()`: a range run (a backfill) logs its check evaluations per
# partition, which Dagster never counts as current for the partition's materialization, so the
# condition stayed false after every backfill. A partition an ERROR rule blocks is never committed
# nor materialized, so it cannot trigger anything; a current failed blocking check still holds back.
FOLLOW_FEATURE_GROUPS = (
    dg.AutomationCondition.eager().without(dg.AutomationCondition.in_latest_time_window())
    & ~dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
    )
).with_label("follows its feature group")


def downstream_keys(defs: dg.Definitions, roots: Sequence[dg.AssetKey]) -> set[dg.AssetKey]:
    """Keys of the assets that depend, directly or not, on `roots` (the roots excluded)."""
    specs = [spec for a in defs.assets or [] for spec in (a.specs if isinstance(a, dg.AssetsDefinition) else [a])]
    found: set[dg.AssetKey] = set()
    frontier = set(roots)
    while frontier:
        frontier = {s.key for s in specs if s.key not in found and any(d.asset_key in frontier for d in s.deps)}
        frontier -= set(roots)
        found |= frontier
    return found


def follow_feature_groups(defs: dg.Definitions, group_keys: Sequence[dg.AssetKey], *, sensor: bool = True) -> dg.Definitions:
    """`defs` where every asset downstream of `group_keys` follows them automatically, unless it says otherwise.

    The automation sensor evaluates only these definitions' assets, so a code location that merges
    them keeps its own automation sensor; `sensor=False` leaves it out (one sensor of yours covers all).
    """
    followers = downstream_keys(defs, group_keys)

    def follow(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in followers or spec.automation_condition is not None:
            return spec
        return spec.replace_attributes(automation_condition=FOLLOW_FEATURE_GROUPS)

    followed = defs.map_asset_specs(func=follow)
    if not sensor:
        return followed
    own = [key for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) for key in a.keys]
    automation = dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(*own),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Evaluates the automation conditions of drift, online sync and other assets downstream of feature groups.",
    )
    return dg.Definitions.merge(followed, dg.Definitions(sensors=[automation]))
