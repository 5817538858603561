"""Dagster metadata from feature statistics: numbers the UI plots over time, a table for the latest."""

from typing import Any

import dagster as dg


def statistics_metadata(statistics: dict[str, Any]) -> dict[str, Any]:
    """Numeric metadata per feature (`mean/<f>`, `null_fraction/<f>`, ...) and a `statistics` table."""
    metadata: dict[str, Any] = {"statistics_partition": statistics.get("partition", "all")}
    records = []
    for name, entry in statistics["features"].items():
        metadata[f"null_fraction/{name}"] = float(entry["null_fraction"])
        row = {"feature": name, "kind": entry["kind"], "null_fraction": round(entry["null_fraction"], 6)}
        if entry["kind"] == "numeric":
            for stat in ("mean", "std", "min", "max"):
                value = entry[stat]
                metadata[f"{stat}/{name}"] = float("nan") if value is None else float(value)
                row[stat] = "" if value is None else f"{value:.6g}"
            median = entry["quantiles"].get("p50")
            row["median"] = "" if median is None else f"{median:.6g}"
        else:
            metadata[f"distinct/{name}"] = int(entry["distinct"])
            row["top"] = ", ".join(f"{t['value']} ({t['count']})" for t in entry["top"])
        records.append(row)
    columns = ["feature", "kind", "null_fraction", "mean", "std", "min", "max", "median", "top"]
    metadata["statistics"] = dg.MetadataValue.table(
        [dg.TableRecord({c: r.get(c, "") for c in columns}) for r in records],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "float" if c == "null_fraction" else "string") for c in columns]),
    )
    return metadata
