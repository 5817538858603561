"""The demo repository's rules block its broken day and its drift settings see its drift stretch."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from assets import raw, users
from feature_platform.quality.drift import detect_drift
from feature_platform.quality.validation import validate


def transactions(first: datetime, days: int) -> pd.DataFrame:
    return pd.concat([raw.produce_transactions(first + timedelta(days=d), first + timedelta(days=d + 1)) for d in range(days)])


def day(value) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)


def last_transaction(start: datetime, days: int = 1) -> pd.DataFrame:
    end = start + timedelta(days=days)
    return users.compute_user_last_transaction({"transactions": transactions(start, days)}, start, end)


def test_the_broken_day_is_blocked_by_an_error_rule_and_the_day_before_is_not() -> None:
    group = users.user_last_transaction
    broken = validate(group, last_transaction(day(raw.BROKEN_DAY)), partition=raw.BROKEN_DAY.isoformat())
    assert [r.rule for r in broken.errors] == ["last_amount_in_range"]
    before = validate(group, last_transaction(day(raw.BROKEN_DAY) - timedelta(days=1)))
    assert not before.errors and not before.warnings


def test_the_drift_stretch_raises_a_drift_alarm_and_the_week_before_does_not() -> None:
    group = users.user_last_transaction
    drift_day = day(raw.DRIFT_FROM)
    reference = last_transaction(drift_day - timedelta(days=7), days=7)
    assert detect_drift(group, "drift", last_transaction(drift_day), reference).alarm
    calm = last_transaction(drift_day - timedelta(days=8), days=7)
    assert not detect_drift(group, "calm", last_transaction(drift_day - timedelta(days=1)), calm).alarm


def test_the_code_location_loads_with_checks_drift_assets_and_the_alert_sensor() -> None:
    import definitions

    dg.Definitions.validate_loadable(definitions.defs)
    keys = {a.key.to_user_string() for a in definitions.defs.assets}
    assert {"drift/user_last_transaction", "drift/merchant_features"} <= keys
    assert "drift/merchant_country_features" not in keys  # drift=None for that group
    checks = {c.name for a in definitions.defs.assets if isinstance(a, dg.AssetsDefinition) and a.key.path[0] == "features" for c in a.check_specs}
    assert {"contract", "last_amount_in_range", "window_counts_consistent", "country_amount_sum_1d_in_range"} <= checks
    assert definitions.defs.resolve_sensor_def("feature_quality_alerts").default_status == dg.DefaultSensorStatus.RUNNING
