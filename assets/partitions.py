"""Partitions of the demo repository, as named constants."""

import os

from feature_platform import DailyPartitions

DAILY = DailyPartitions(start="2024-04-01")

# The window `make demo` materializes (inclusive); the tests run a shorter one (FEATURE_PLATFORM_DEMO_LAST_DAY).
DEMO_FIRST_DAY = "2024-04-01"
DEMO_LAST_DAY = os.environ.get("FEATURE_PLATFORM_DEMO_LAST_DAY", "2024-05-15")
# `make demo` checks drift over the last days only (the raw data shifts from 2024-05-08).
DEMO_DRIFT_FIRST_DAY = "2024-05-05"
