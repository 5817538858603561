"""Per-partition statistics of a feature group, stored in a small Delta table beside the group's table.

Numeric features: null fraction, min, max, mean, std, quantiles and a histogram;
categorical ones (strings, bools): distinct count and top values; and the
correlations between the group's numeric features. Stored one row per
partition (JSON) at `<offline_root>/<project>/_statistics/<group>/v<version>`,
so they live wherever the tables live (local or S3) and are replaced atomically.
"""

import json
import math
import random
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.offline.store import COMMIT_ATTEMPTS, OfflineStore

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 10
TOP_VALUES = 5
UNPARTITIONED = "all"
STATISTICS_SCHEMA = pa.schema(
    [
        pa.field("partition", pa.string(), nullable=False),
        pa.field("computed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("statistics", pa.string(), nullable=False),
    ]
)


def _number(value: Any) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    if value is None or value is pd.NA:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def is_numeric(group: FeatureGroup, feature: str) -> bool:
    kind = group.feature(feature).arrow_type
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _numeric(values: pd.Series) -> dict[str, Any]:
    finite = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return {"min": None, "max": None, "mean": None, "std": None, "quantiles": {}, "histogram": {"edges": [], "counts": []}}
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return {
        "min": _number(finite.min()),
        "max": _number(finite.max()),
        "mean": _number(finite.mean()),
        "std": _number(finite.std(ddof=1)) if len(finite) > 1 else None,
        "quantiles": {f"p{round(q * 100):02d}": _number(v) for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES))},
        "histogram": {"edges": [_number(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def _categorical(values: pd.Series) -> dict[str, Any]:
    counts = values.dropna().astype(str).value_counts()
    return {
        "distinct": int(len(counts)),
        "top": [{"value": str(v), "count": int(c)} for v, c in counts.head(TOP_VALUES).items()],
    }


def compute_statistics(group: FeatureGroup, frame: pd.DataFrame) -> dict[str, Any]:
    """Statistics of the group's features over `frame` (one partition), as a JSON-ready dict.

    >>> compute_statistics(user_stats, frame)["features"]["amount_mean"]["mean"]
    """
    rows = len(frame)
    features: dict[str, Any] = {}
    numeric = []
    for feature in group.feature_names:
        column = frame[feature]
        entry: dict[str, Any] = {"null_fraction": float(column.isna().mean()) if rows else 0.0}
        if is_numeric(group, feature):
            numeric.append(feature)
            entry.update(kind="numeric", **_numeric(column))
        else:
            entry.update(kind="categorical", **_categorical(column))
        features[feature] = entry
    correlations: dict[str, dict[str, float | None]] = {}
    if len(numeric) > 1 and rows > 1:
        matrix = frame[numeric].astype("float64").corr()
        correlations = {a: {b: _number(matrix.loc[a, b]) for b in numeric} for a in numeric}
    return {"group": group.name, "version": group.version, "rows": rows, "features": features, "correlations": correlations}


class StatisticsStore:
    """Reads and writes the statistics table of each group, beside the offline tables."""

    def __init__(self, offline: OfflineStore) -> None:
        self.offline = offline

    def table_uri(self, group: FeatureGroup) -> str:
        return f"{self.offline.root}/{self.offline.project}/_statistics/{group.name}/v{group.version}"

    def _table(self, group: FeatureGroup) -> DeltaTable | None:
        try:
            return DeltaTable(self.table_uri(group), storage_options=self.offline.storage_options or None)
        except TableNotFoundError:
            return None

    def write(self, group: FeatureGroup, partition: str | None, statistics: dict[str, Any]) -> None:
        """Replace the statistics of one partition (`None` for an unpartitioned group)."""
        self.write_many(group, {partition: statistics})

    def write_many(self, group: FeatureGroup, statistics: dict[str | None, dict[str, Any]]) -> None:
        """Replace the statistics of several partitions in one atomic commit."""
        if not statistics:
            return
        keys = [partition or UNPARTITIONED for partition in statistics]
        now = datetime.now(timezone.utc)
        rows = pa.table(
            {
                "partition": keys,
                "computed_at": [now] * len(keys),
                "rows": [int(s["rows"]) for s in statistics.values()],
                "statistics": [json.dumps({**s, "partition": k}, allow_nan=False) for k, s in zip(keys, statistics.values())],
            },
            schema=STATISTICS_SCHEMA,
        )
        predicate = "partition IN (" + ", ".join(f"'{k}'" for k in keys) + ")"
        options = self.offline.storage_options or None
        for attempt in range(COMMIT_ATTEMPTS):
            existing = self._table(group)
            try:
                if existing is None:
                    # As the offline store does: a racing creator's blind commit would be retried as an
                    # append and duplicate rows; without commit retries it fails and we overwrite next time.
                    write_deltalake(
                        self.table_uri(group), rows, mode="error", storage_options=options,
                        commit_properties=CommitProperties(max_commit_retries=0),
                    )
                else:
                    write_deltalake(existing, rows, mode="overwrite", predicate=predicate, storage_options=options)
                return
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
            except (DeltaError, OSError) as exc:
                if existing is not None or "already exists" not in str(exc).lower() or attempt == COMMIT_ATTEMPTS - 1:
                    raise
            time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))

    def read(self, group: FeatureGroup, partition: str | None = None) -> list[dict[str, Any]]:
        """Stored statistics, one dict per partition in ascending order (or just `partition`)."""
        table = self._table(group)
        if table is None:
            return []
        rows = table.to_pyarrow_table().sort_by("partition").to_pylist()
        if partition is not None:
            rows = [r for r in rows if r["partition"] == partition]
        return [json.loads(r["statistics"]) for r in rows]

    def latest(self, group: FeatureGroup) -> dict[str, Any] | None:
        rows = self.read(group)
        return rows[-1] if rows else None


def describe_statistics(offline: OfflineStore, group: FeatureGroup) -> dict[str, Any]:
    """The latest partition's statistics and the row count of every partition, for `describe GROUP`."""
    history = StatisticsStore(offline).read(group)
    return {
        "group": group.name,
        "version": group.version,
        "partitions": len(history),
        "row_counts": {s["partition"]: s["rows"] for s in history},
        "latest": history[-1] if history else None,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_statistics(description: dict[str, Any]) -> str:
    """The text `feature-platform describe GROUP` prints for `describe_statistics(...)`."""
    lines = [f"Statistics of {description['group']} v{description['version']}: {description['partitions']} partition(s)"]
    latest = description["latest"]
    if latest is None:
        return lines[0] + " (none computed yet: materialize the group)"
    lines.append(f"latest partition {latest['partition']}: {latest['rows']} rows")
    lines.append(f"  {'feature':<28} {'nulls':>7} {'min':>10} {'mean':>10} {'max':>10} {'std':>10}  top values / median")
    for name, entry in latest["features"].items():
        if entry["kind"] == "numeric":
            median = entry["quantiles"].get("p50")
            lines.append(
                f"  {name:<28} {entry['null_fraction']:>7.2%} {_fmt(entry['min']):>10} {_fmt(entry['mean']):>10} "
                f"{_fmt(entry['max']):>10} {_fmt(entry['std']):>10}  median {_fmt(median)}"
            )
        else:
            top = ", ".join(f"{t['value']} ({t['count']})" for t in entry["top"])
            lines.append(f"  {name:<28} {entry['null_fraction']:>7.2%} {'':>10} {'':>10} {'':>10} {'':>10}  {entry['distinct']} distinct: {top}")
    pairs = [(a, b, v) for a, row in latest["correlations"].items() for b, v in row.items() if a < b and v is not None]
    strongest = sorted(pairs, key=lambda p: -abs(p[2]))[:5]
    if strongest:
        lines.append("  strongest correlations: " + ", ".join(f"{a}~{b} {v:+.2f}" for a, b, v in strongest))
    counts = list(description["row_counts"].items())[-7:]
    lines.append("  rows of the last partitions: " + ", ".join(f"{p} {n}" for p, n in counts))
    return "\n".join(lines)
