"""Alert routing: one sensor sends failed checks, drift alarms, failed runs and stale groups to the sinks."""

import assets
from feature_platform.orchestration import alert_sensor

quality_alerts = alert_sensor(assets.feature_groups)
