"""The code location `definitions.py` loads as Dagster would load it."""

import dagster as dg

import definitions


def test_definitions_are_loadable() -> None:
    dg.Definitions.validate_loadable(definitions.defs)
