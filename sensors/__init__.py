"""Sensors and alert routing of the repository."""

from sensors.alerts import quality_alerts

sensors: list = [quality_alerts]
