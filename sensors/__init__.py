"""Sensors and alert routing of the repository."""

sensors: list = []
