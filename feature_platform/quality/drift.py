"""Drift of a feature group: one partition against a reference window, with Evidently's drift preset.

The reference is the group's previous partitions (7 by default) or a pinned
baseline range, read from the Delta table. Both sides are sampled to a fixed
size so a large partition stays fast. Evidently picks a method per feature
(a statistical test on small samples, a distance on large ones); the result
keeps each feature's score, method and verdict, the share of drifted
features, and the path of the HTML report.

A feature that is entirely null, or constant, in the partition while the
reference is not is judged without Evidently (method `all_null` / `constant`)
and alone makes the partition drift: it is the commonest breakage.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from feature_platform.definitions.concepts import DailyPartitions, FeatureGroup
from feature_platform.definitions.rules import DriftSettings
from feature_platform.errors import DefinitionError, import_extra
from feature_platform.offline.statistics import is_numeric
from feature_platform.offline.store import OfflineStore


# A current column is judged broken when the reference would give it with less than this chance.
BREAKAGE_P_VALUE = 0.05
# Fewer equal values than this are not called constant (a tiny partition repeats values by chance).
CONSTANT_MIN_ROWS = 5
BREAKAGES = ("all_null", "constant")


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift: Evidently's score, the method and threshold it used, and its verdict."""

    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """The drift of one partition; `status` is `ok`, `drift` (share above the limit) or `skipped` (see `reason`)."""

    group: str
    partition: str
    status: str
    reason: str = ""
    reference: tuple[str, str] | None = None
    current_rows: int = 0
    reference_rows: int = 0
    features: tuple[FeatureDrift, ...] = ()
    drifted_share: float = 0.0
    max_drifted_share: float = 0.5
    report_path: str | None = None

    @property
    def alarm(self) -> bool:
        return self.status == "drift"

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def summary(self) -> str:
        where = f"feature group '{self.group}', partition {self.partition}"
        if self.status == "skipped":
            return f"{where}: drift skipped: {self.reason}"
        broken = [f"{f.feature} ({f.method.replace('_', ' ')})" for f in self.features if f.drifted and f.method in BREAKAGES]
        return (
            f"{where}: {len(self.drifted_features)} of {len(self.features)} features drifted "
            f"(share {self.drifted_share:.2f}, limit {self.max_drifted_share:.2f}): {self.drifted_features}"
            + (f"; broken in this partition: {', '.join(broken)}" if broken else "")
        )


def reference_window(settings: DriftSettings, partition: str) -> tuple[str, str]:
    """The first and last partition key (inclusive) of the reference for `partition`."""
    if settings.baseline is not None:
        return settings.baseline
    day = date.fromisoformat(partition)
    first = day - timedelta(days=settings.reference_partitions)
    return first.isoformat(), (day - timedelta(days=1)).isoformat()


def report_path(home: str | Path, project: str, group: str, partition: str) -> Path:
    """Where the HTML report of a partition is saved: `<home>/reports/<project>/<group>/<partition>.html`."""
    return Path(home) / "reports" / project / group / f"{partition}.html"


def _prepare(group: FeatureGroup, frame: pd.DataFrame, features: list[str], size: int, seed: int) -> pd.DataFrame:
    frame = frame[features].reset_index(drop=True)
    if len(frame) > size:
        frame = frame.sample(n=size, random_state=seed).reset_index(drop=True)
    for feature in features:
        if not is_numeric(group, feature):
            frame[feature] = frame[feature].astype("string").astype(object)
        else:
            frame[feature] = frame[feature].astype("float64")
    return frame


def detect_drift(
    group: FeatureGroup,
    partition: str,
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    settings: DriftSettings | None = None,
    reference_range: tuple[str, str] | None = None,
    html_path: str | Path | None = None,
) -> DriftResult:
    """Compare `current` with `reference` over the group's drift features; save the HTML report if asked.

    >>> detect_drift(user_stats, "2024-05-08", current, reference).drifted_share
    """
    settings = settings or group.drift or DriftSettings()
    base = dict(group=group.name, partition=partition, reference=reference_range, max_drifted_share=settings.max_drifted_share)
    if current.empty:
        return DriftResult(status="skipped", reason="the partition has no rows", **base)
    if reference.empty:
        return DriftResult(status="skipped", reason="no reference data yet (no rows in the reference window)", current_rows=len(current), **base)
    requested = list(settings.features or group.feature_names)
    comparable = [f for f in requested if reference[f].notna().any()]
    if not comparable:
        return DriftResult(status="skipped", reason="no drift feature has values in the reference window", current_rows=len(current), reference_rows=len(reference), **base)
    # A feature gone entirely null or constant is the commonest breakage; judged here, not left out of the comparison.
    broken = {b.feature: b for b in (_breakage(f, current[f], reference[f]) for f in comparable) if b is not None}
    features = [f for f in comparable if f not in broken]
    compared: dict[str, FeatureDrift] = {}
    path = None
    if features:
        compared, path = _evidently(group, current, reference, features, settings, html_path)
    per_feature = [broken.get(f) or compared[f] for f in comparable]
    share = sum(f.drifted for f in per_feature) / len(per_feature)
    alarm = share > settings.max_drifted_share or any(b.drifted for b in broken.values())
    return DriftResult(
        status="drift" if alarm else "ok",
        current_rows=len(current),
        reference_rows=len(reference),
        features=tuple(per_feature),
        drifted_share=share,
        report_path=path,
        **base,
    )


def _breakage(feature: str, current: pd.Series, reference: pd.Series) -> FeatureDrift | None:
    """An all-null or constant current column judged against the reference, or None to leave it to Evidently.

    The score is the chance that the reference's values, drawn as often as the current
    partition has them, all equal the current one (null for an all-null column): below
    `BREAKAGE_P_VALUE` the column is drifted, e.g. always for a value the reference never had.
    """
    values = current.dropna()
    if values.empty:
        method, draws, share = "all_null", len(current), float(reference.isna().mean())
    elif len(values) >= CONSTANT_MIN_ROWS and values.nunique() == 1:
        known = reference.dropna()
        method, draws, share = "constant", len(values), float((known == values.iloc[0]).mean())
    else:
        return None
    score = share**draws
    return FeatureDrift(feature, method, score, BREAKAGE_P_VALUE, score < BREAKAGE_P_VALUE)


def _evidently(
    group: FeatureGroup,
    current: pd.DataFrame,
    reference: pd.DataFrame,
    features: list[str],
    settings: DriftSettings,
    html_path: str | Path | None,
) -> tuple[dict[str, FeatureDrift], str | None]:
    """Evidently's per-feature drift of `features` (by name) and the path of its HTML report, if asked."""
    cur = _prepare(group, current, features, settings.sample_size, settings.seed)
    ref = _prepare(group, reference, features, settings.sample_size, settings.seed)
    # Evidently takes seconds to import: only a drift computation pays it.
    evidently = import_extra("evidently", "drift", "drift monitoring")
    DataDriftPreset = import_extra("evidently.presets", "drift", "drift monitoring").DataDriftPreset
    Dataset, Report = evidently.Dataset, evidently.Report
    definition = evidently.DataDefinition(
        numerical_columns=[f for f in features if is_numeric(group, f)],
        categorical_columns=[f for f in features if not is_numeric(group, f)],
    )
    preset = DataDriftPreset(drift_share=settings.max_drifted_share, method=settings.method, threshold=settings.threshold)
    snapshot = Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    path = None
    if html_path is not None:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))
        path = str(html_path)
    return {f.feature: f for f in _parse(snapshot.dict(), features)}, path


def _parse(report: dict[str, Any], features: list[str]) -> list[FeatureDrift]:
    """Per-feature score, method and threshold from the metrics; the verdict from the bound tests."""
    failed = {t["metric_config"]["metric_id"] for t in report.get("tests", []) if t.get("status") == "FAIL"}
    by_column = {}
    for metric in report["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift") and config.get("column") in features:
            by_column[config["column"]] = FeatureDrift(
                feature=config["column"],
                method=str(config.get("method")),
                score=float(metric["value"]),
                threshold=float(config.get("threshold")),
                drifted=metric["id"] in failed,
            )
    missing = [f for f in features if f not in by_column]
    if missing:
        raise RuntimeError(f"Evidently's report has no drift result for {missing}")
    return [by_column[f] for f in features]


def check_partition(
    offline: OfflineStore,
    group: FeatureGroup,
    partition: str,
    *,
    reports_home: str | Path,
    settings: DriftSettings | None = None,
) -> DriftResult:
    """Drift of a stored partition against its reference window, read from the group's Delta table."""
    settings = settings or group.drift
    if settings is None:
        raise DefinitionError(f"feature group '{group.name}' has drift monitoring disabled (drift=None)")
    if group.partitions is None:
        raise DefinitionError(f"feature group '{group.name}' is not partitioned: drift compares partitions")
    features = list(settings.features or group.feature_names)
    start, end = DailyPartitions.window(partition)
    first, last = reference_window(settings, partition)
    current = offline.read(group, start=start, end=end, columns=features).to_pandas()
    reference = offline.read(
        group, start=DailyPartitions.window(first)[0], end=DailyPartitions.window(last)[1], columns=features
    ).to_pandas()
    html = report_path(reports_home, offline.project, group.name, partition)
    return detect_drift(group, partition, current, reference, settings=settings, reference_range=(first, last), html_path=html)
