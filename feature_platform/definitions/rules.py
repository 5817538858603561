"""What a feature group declares about the quality of its data: row rules and drift settings.

Plain definitions (no pandas, no pandera): `feature_platform.quality.validation` turns
rules into Pandera checks, `feature_platform.quality.drift` applies the drift settings.
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from feature_platform.errors import DefinitionError

Severity = Literal["ERROR", "WARN"]
SEVERITIES = ("ERROR", "WARN")
RULE_KINDS = ("in_range", "allowed_values", "max_null_fraction", "custom")
# Rule names become Dagster asset check names, which allow only these characters.
RULE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
RESERVED_RULE_NAMES = ("contract", "drift", "freshness")


def _severity(owner: str, severity: object) -> Severity:
    if severity not in SEVERITIES:
        raise DefinitionError(f"{owner}: severity must be one of {list(SEVERITIES)}, got {severity!r}")
    return severity  # type: ignore[return-value]


@dataclass(frozen=True)
class Rule:
    """One expectation on a feature group's rows, with a severity and a description.

    `ERROR` blocks the partition (it is not committed); `WARN` is recorded and alerted.
    Build rules with the constructors:

    >>> Rule.in_range("amount_sum_7d", min=0, description="Spend cannot be negative.")
    >>> Rule.allowed_values("segment", ["a", "b"], severity="WARN")
    >>> Rule.max_null_fraction("amount_mean_30d", 0.1, severity="WARN")
    >>> Rule.custom("count_7d_le_30d", lambda df: df["txn_count_7d"] <= df["txn_count_30d"])
    """

    name: str
    kind: str
    column: str | None
    severity: Severity = "ERROR"
    description: str = ""
    params: tuple[tuple[str, Any], ...] = ()
    function: Callable[[Any], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not RULE_NAME.match(self.name):
            raise DefinitionError(f"rule name {self.name!r} is invalid: use a letter followed by letters, digits or underscores")
        if self.name in RESERVED_RULE_NAMES:
            raise DefinitionError(f"rule name '{self.name}' is reserved; choose another")
        if self.kind not in RULE_KINDS:
            raise DefinitionError(f"rule '{self.name}': unknown kind {self.kind!r}; use one of {list(RULE_KINDS)}")
        _severity(f"rule '{self.name}'", self.severity)
        if self.kind == "custom" and not callable(self.function):
            raise DefinitionError(f"rule '{self.name}': a custom rule needs a function")
        if self.kind != "custom" and self.column is None:
            raise DefinitionError(f"rule '{self.name}': a {self.kind} rule needs a column")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.params)

    def summary(self) -> str:
        """A one-line statement of the rule, for check descriptions and alerts."""
        options = self.options
        if self.kind == "in_range":
            low = "-inf" if options["min"] is None else options["min"]
            high = "inf" if options["max"] is None else options["max"]
            text = f"{self.column} in [{low}, {high}]"
        elif self.kind == "allowed_values":
            text = f"{self.column} in {list(options['values'])}"
        elif self.kind == "max_null_fraction":
            text = f"null fraction of {self.column} <= {options['fraction']}"
        else:
            text = f"custom check{f' on {self.column}' if self.column else ''}"
        return f"[{self.severity}] {text}" + (f": {self.description}" if self.description else "")

    @classmethod
    def in_range(
        cls,
        column: str,
        *,
        min: float | None = None,
        max: float | None = None,
        severity: Severity = "ERROR",
        description: str = "",
        name: str | None = None,
    ) -> "Rule":
        """Every non-null value of `column` lies in `[min, max]` (either bound may be open)."""
        if min is None and max is None:
            raise DefinitionError(f"rule on '{column}': in_range needs min, max or both")
        if min is not None and max is not None and min > max:
            raise DefinitionError(f"rule on '{column}': in_range min {min} is above max {max}")
        return cls(name or f"{column}_in_range", "in_range", column, severity, description, (("min", min), ("max", max)))

    @classmethod
    def allowed_values(
        cls,
        column: str,
        values: Sequence[Any],
        *,
        severity: Severity = "ERROR",
        description: str = "",
        name: str | None = None,
    ) -> "Rule":
        """Every non-null value of `column` is one of `values`."""
        if isinstance(values, str) or not list(values):
            raise DefinitionError(f"rule on '{column}': allowed_values needs a non-empty list of values")
        return cls(name or f"{column}_allowed_values", "allowed_values", column, severity, description, (("values", tuple(values)),))

    @classmethod
    def max_null_fraction(
        cls,
        column: str,
        fraction: float,
        *,
        severity: Severity = "ERROR",
        description: str = "",
        name: str | None = None,
    ) -> "Rule":
        """At most `fraction` (0..1) of the partition's rows have no value in `column`."""
        if not isinstance(fraction, (int, float)) or math.isnan(fraction) or not 0 <= fraction <= 1:
            raise DefinitionError(f"rule on '{column}': max_null_fraction needs a fraction in [0, 1], got {fraction!r}")
        return cls(name or f"{column}_null_fraction", "max_null_fraction", column, severity, description, (("fraction", float(fraction)),))

    @classmethod
    def custom(
        cls,
        name: str,
        function: Callable[[Any], Any],
        *,
        column: str | None = None,
        severity: Severity = "ERROR",
        description: str = "",
    ) -> "Rule":
        """`function(frame)` (or `function(series)` with `column`) returns a boolean per row (True = valid) or one bool."""
        return cls(name, "custom", column, severity, description, (), function)


@dataclass(frozen=True)
class DriftSettings:
    """How a group's partitions are compared for drift.

    The reference is the `reference_partitions` partitions before the checked one,
    or a pinned `baseline` range `("YYYY-MM-DD", "YYYY-MM-DD")` (inclusive).
    Partitions are sampled to `sample_size` rows. The drift check fails with
    `severity` when the share of drifted features exceeds `max_drifted_share`.
    `method` and `threshold` override Evidently's per-feature choice (e.g.
    `method="wasserstein", threshold=0.3`); set both, since a p-value test and
    a distance read their thresholds in opposite directions.
    """

    reference_partitions: int = 7
    baseline: tuple[str, str] | None = None
    sample_size: int = 20_000
    max_drifted_share: float = 0.5
    severity: Severity = "WARN"
    features: Sequence[str] | None = None
    seed: int = 0
    method: str | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reference_partitions, int) or self.reference_partitions < 1:
            raise DefinitionError(f"drift: reference_partitions must be a positive integer, got {self.reference_partitions!r}")
        if self.baseline is not None:
            if len(self.baseline) != 2 or not all(isinstance(d, str) for d in self.baseline) or self.baseline[0] > self.baseline[1]:
                raise DefinitionError(f"drift: baseline must be a range ('YYYY-MM-DD', 'YYYY-MM-DD'), got {self.baseline!r}")
            object.__setattr__(self, "baseline", tuple(self.baseline))
        if not isinstance(self.sample_size, int) or self.sample_size < 100:
            raise DefinitionError(f"drift: sample_size must be an integer >= 100, got {self.sample_size!r}")
        if not 0 <= self.max_drifted_share < 1:
            raise DefinitionError(f"drift: max_drifted_share must be in [0, 1), got {self.max_drifted_share!r}")
        _severity("drift", self.severity)
        if self.threshold is not None and (not isinstance(self.threshold, (int, float)) or self.threshold <= 0):
            raise DefinitionError(f"drift: threshold must be a positive number, got {self.threshold!r}")
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
