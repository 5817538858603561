"""Train/validation/test splits of a training dataset: seeded random fractions or time ranges.

A split labels each row with a split name (or None: left out). It is recorded
in the dataset's manifest as a plain dict, so a rebuild labels rows the same way.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from feature_platform.definitions.concepts import check_name
from feature_platform.definitions.contract import utc_timestamp
from feature_platform.errors import DefinitionError
from feature_platform.retrieval.entity_frames import entity_times


@dataclass(frozen=True)
class RandomSplit:
    """Rows shuffled with `seed` and cut by `fractions` (summing to 1), in the order given.

    >>> RandomSplit({"train": 0.8, "validation": 0.1, "test": 0.1}, seed=7)
    """

    fractions: Mapping[str, float]
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", dict(self.fractions))
        if not self.fractions:
            raise DefinitionError("RandomSplit needs at least one named fraction")
        for name, fraction in self.fractions.items():
            check_name("split", name)
            if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
                raise DefinitionError(f"RandomSplit fraction of '{name}' must be in (0, 1], got {fraction!r}")
        if abs(sum(self.fractions.values()) - 1) > 1e-9:
            raise DefinitionError(f"RandomSplit fractions must sum to 1, got {sum(self.fractions.values())}")

    def assign(self, frame: pd.DataFrame, timestamp_column: str) -> np.ndarray:
        """The split name of each row: exact counts `round(cumulative fraction * rows)`."""
        rows = len(frame)
        order = np.random.default_rng(self.seed).permutation(rows)
        bounds = np.rint(np.cumsum(list(self.fractions.values())) * rows).astype(np.int64)
        labels = np.empty(rows, dtype=object)
        begin = 0
        for name, end in zip(self.fractions, bounds):
            labels[order[begin:end]] = name
            begin = end
        return labels

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "random", "fractions": dict(self.fractions), "seed": self.seed}


@dataclass(frozen=True)
class TimeSplit:
    """Rows by entity time: each split is a UTC range `[start, end)`, either end open (None).

    Rows in no range are left out of the dataset.

    >>> TimeSplit({"train": (None, "2024-05-01"), "test": ("2024-05-01", None)})
    """

    ranges: Mapping[str, tuple[Any, Any]]
    bounds: dict[str, tuple[int | None, int | None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranges", dict(self.ranges))
        if not self.ranges:
            raise DefinitionError("TimeSplit needs at least one named range")
        bounds = {}
        for name, window in self.ranges.items():
            check_name("split", name)
            if not isinstance(window, (tuple, list)) or len(window) != 2:
                raise DefinitionError(f"TimeSplit range of '{name}' must be (start, end), got {window!r}")
            start, end = (None if t is None else _micros(t) for t in window)
            if start is not None and end is not None and end <= start:
                raise DefinitionError(f"TimeSplit range of '{name}' ends before it starts")
            bounds[name] = (start, end)
        ordered = sorted(bounds.items(), key=lambda item: -(2**63) if item[1][0] is None else item[1][0])
        for (first, (_, first_end)), (second, (second_start, _)) in zip(ordered, ordered[1:]):
            if first_end is None or second_start is None or second_start < first_end:
                raise DefinitionError(f"TimeSplit ranges '{first}' and '{second}' overlap")
        object.__setattr__(self, "bounds", bounds)

    def assign(self, frame: pd.DataFrame, timestamp_column: str) -> np.ndarray:
        times, _ = entity_times(frame[timestamp_column], timestamp_column)
        labels = np.full(len(frame), None, dtype=object)
        for name, (start, end) in self.bounds.items():
            inside = np.ones(len(frame), dtype=bool)
            if start is not None:
                inside &= times >= start
            if end is not None:
                inside &= times < end
            labels[inside] = name
        return labels

    def to_dict(self) -> dict[str, Any]:
        def iso(micros: int | None) -> str | None:
            return None if micros is None else pd.Timestamp(micros, unit="us", tz="UTC").isoformat()

        return {"kind": "time", "ranges": {n: [iso(s), iso(e)] for n, (s, e) in self.bounds.items()}}


Split = RandomSplit | TimeSplit


def split_from_dict(definition: Mapping[str, Any] | None) -> Split | None:
    """The split a manifest recorded (the inverse of `to_dict`)."""
    if definition is None:
        return None
    if definition.get("kind") == "random":
        return RandomSplit(definition["fractions"], seed=definition["seed"])
    if definition.get("kind") == "time":
        return TimeSplit({n: tuple(r) for n, r in definition["ranges"].items()})
    raise DefinitionError(f"unknown split definition {definition!r}")


def _micros(value: datetime | str | pd.Timestamp) -> int:
    try:
        return utc_timestamp(value).value // 1_000
    except (TypeError, ValueError):
        raise DefinitionError(f"TimeSplit bound {value!r} is not a time") from None
