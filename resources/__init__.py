"""Resources of the repository, configured from the environment (nothing hard-coded).

| variable | meaning | default |
| --- | --- | --- |
| FEATURE_PLATFORM_PROJECT | namespace of tables and online keys | `default` |
| FEATURE_PLATFORM_HOME | folder of the embedded defaults | `.feature_platform` |
| FEATURE_PLATFORM_OFFLINE_ROOT | Delta root, a path or `s3://bucket/prefix` | `<home>/offline` |
| FEATURE_PLATFORM_RAW_ROOT | raw landing files | `<home>/raw` |
| FEATURE_PLATFORM_REDIS_URL | online store | the embedded Redis server (development only) |
| FEATURE_PLATFORM_ENV | `development` or `production` (a missing Redis URL fails the code location's load) | `development` |
| FEATURE_PLATFORM_ALERT_WEBHOOK_URL | JSON webhook for alerts (Slack-compatible payload) | none |
| FEATURE_PLATFORM_ALERT_FILE | JSON-lines file of alerts | `<home>/alerts.jsonl` |
"""

import os

import dagster as dg

from feature_platform.orchestration import AlertSinksResource, FeatureStoreResource


def from_env(name: str, default: str | None = None) -> dg.EnvVar | str | None:
    """`EnvVar(name)` when the variable is set (so the UI shows where a value came from), else `default`."""
    return dg.EnvVar(name) if os.environ.get(name) else default


feature_platform_store = FeatureStoreResource(
    project=from_env("FEATURE_PLATFORM_PROJECT", "default"),
    home=from_env("FEATURE_PLATFORM_HOME", ".feature_platform"),
    offline_root=from_env("FEATURE_PLATFORM_OFFLINE_ROOT"),
    raw_root=from_env("FEATURE_PLATFORM_RAW_ROOT"),
    redis_url=from_env("FEATURE_PLATFORM_REDIS_URL"),
    environment=from_env("FEATURE_PLATFORM_ENV"),
)

feature_platform_alerts = AlertSinksResource(
    webhook_url=from_env("FEATURE_PLATFORM_ALERT_WEBHOOK_URL"),
    alert_file=from_env("FEATURE_PLATFORM_ALERT_FILE"),
)

resources = {"feature_platform_store": feature_platform_store, "feature_platform_alerts": feature_platform_alerts}
