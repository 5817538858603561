"""The alert sensor: failed checks, drift alarms, failed materializations and stale groups, each sent once.

A failed WARN check does not fail its run, so a run-failure sensor would miss
it. This sensor walks finished runs instead (successes and failures, by event
storage id) and reads each run's check evaluations and step failures. Its
cursor (stored by Dagster, so it survives a daemon restart) holds the last
storage id handled per run status, the sinks that already got each alert of a
run interrupted by a delivery error, and the stale partition last alerted per group.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg

from feature_platform.definitions.concepts import FeatureGroup
from feature_platform.offline.store import OfflineStore
from feature_platform.orchestration.resources import FeatureStoreResource
from feature_platform.quality.alerts import Alert, AlertDeliveryError, AlertSink, FileSink, WebhookSink
from feature_platform.quality.freshness import check_freshness

RUN_STATUSES = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
RUNS_PER_TICK = 100


class AlertSinksResource(dg.ConfigurableResource):
    """Where alerts go: a JSON webhook (Slack-compatible) if `webhook_url` is set, and a JSON-lines file.

    `alert_file` defaults to `<feature store home>/alerts.jsonl`.
    """

    webhook_url: str | None = None
    alert_file: str | None = None
    timeout_seconds: float = 10.0

    def sinks(self, home: str) -> dict[str, AlertSink]:
        sinks: dict[str, AlertSink] = {"file": FileSink(self.alert_file or str(Path(home) / "alerts.jsonl"))}
        if self.webhook_url:
            sinks["webhook"] = WebhookSink(self.webhook_url, timeout=self.timeout_seconds)
        return sinks


@dataclass
class AlertCursor:
    """What the sensor has handled; serialized as JSON in the sensor's cursor."""

    after: dict[str, int] = field(default_factory=dict)
    partial: dict[str, list[str]] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "AlertCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(data.get("after", {}), data.get("partial", {}), data.get("stale", {}))

    @classmethod
    def starting_now(cls, instance: dg.DagsterInstance) -> "AlertCursor":
        """A cursor after every run that has finished so far: history is not alerted on."""
        after = {}
        for status in RUN_STATUSES:
            records = instance.fetch_run_status_changes(dg.RunStatusChangeRecordsFilter(event_type=status), limit=1).records
            if records:
                after[status.value] = records[0].storage_id
        return cls(after=after)

    def dump(self) -> str:
        return json.dumps({"after": self.after, "partial": self.partial, "stale": self.stale}, sort_keys=True)


def _plain(value: dg.MetadataValue) -> Any:
    if isinstance(value, dg.TableMetadataValue):
        return [dict(r.data) for r in value.records]
    raw = value.value
    return raw if isinstance(raw, (str, int, float, bool)) or raw is None else str(raw)


def _check_alert(run_id: str, evaluations: list[dg.AssetCheckEvaluation]) -> Alert:
    """One alert for the failed evaluations of one check in one run (one per partition in a backfill)."""
    first = evaluations[0]
    namespace, group = first.asset_key.path[0], first.asset_key.path[-1]
    partitions = [e.partition for e in evaluations if e.partition]
    details = {k: _plain(v) for k, v in first.metadata.items()}
    if len(evaluations) > 1:
        details["failed_partitions"] = partitions
        if "failure_count" in details:
            details["failure_count"] = sum(int(e.metadata["failure_count"].value) for e in evaluations if "failure_count" in e.metadata)
    drift = namespace == "drift"
    return Alert(
        id=f"{run_id}:{first.asset_key.to_user_string()}:{first.check_name}",
        kind="drift" if drift else "check_failed",
        severity=first.severity.value,
        group=group,
        title=f"drift alarm on {group}" if drift else f"check '{first.check_name}' failed on {group}",
        message="\n".join(e.description or "" for e in evaluations[:10]),
        partition=", ".join(partitions) or None,
        run_id=run_id,
        check=first.check_name,
        details=details,
    )


def run_alerts(instance: dg.DagsterInstance, run_id: str) -> list[Alert]:
    """Alerts for one finished run: each check that failed (on any partition) and each failed step."""
    kinds = {dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.STEP_FAILURE}
    failed_checks: dict[tuple[str, str], list[dg.AssetCheckEvaluation]] = {}
    alerts = []
    for record in instance.get_records_for_run(run_id, of_type=kinds).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                failed_checks.setdefault((evaluation.asset_key.to_user_string(), evaluation.check_name), []).append(evaluation)
            continue
        step = event.step_key or ""
        error = event.step_failure_data.error if event.step_failure_data else None
        alerts.append(
            Alert(
                id=f"{run_id}:step:{step}",
                kind="materialization_failed",
                severity="ERROR",
                group=step.split("__")[-1],
                title=f"materialization failed: {step}",
                message=(error.message if error else "").strip()[:2000],
                run_id=run_id,
                details={"step": step},
            )
        )
    return [_check_alert(run_id, evaluations) for evaluations in failed_checks.values()] + alerts


def _deliver(alerts: Sequence[Alert], sinks: dict[str, AlertSink], done: dict[str, list[str]], sent: list[Alert]) -> None:
    """Send each alert to each sink that has not had it yet; `done` records progress (raises on failure)."""
    for alert in alerts:
        pending = [name for name in sinks if name not in done.get(alert.id, [])]
        for name in pending:
            sinks[name].send(alert)
            done.setdefault(alert.id, []).append(name)
        if pending:
            sent.append(alert)


def evaluate_alerts(
    instance: dg.DagsterInstance,
    cursor: AlertCursor,
    sinks: dict[str, AlertSink],
    *,
    groups: Sequence[FeatureGroup] = (),
    offline: OfflineStore | None = None,
    now: datetime | None = None,
) -> tuple[list[Alert], str | None]:
    """Send the alerts that are due since `cursor` (updated in place); returns them and any delivery error."""
    sent: list[Alert] = []
    try:
        for status in RUN_STATUSES:
            after = cursor.after.get(status.value)
            records = instance.fetch_run_status_changes(
                dg.RunStatusChangeRecordsFilter(event_type=status, after_storage_id=after), limit=RUNS_PER_TICK, ascending=True
            ).records
            for record in records:
                _deliver(run_alerts(instance, record.run_id), sinks, cursor.partial, sent)
                cursor.after[status.value] = record.storage_id
                cursor.partial = {}
        if offline is not None:
            for group in groups:
                status = check_freshness(offline, group, now or datetime.now(timezone.utc))
                if status is None or status.fresh:
                    cursor.stale.pop(group.name, None)
                    continue
                if cursor.stale.get(group.name) == status.expected_partition:
                    continue
                alert = Alert(
                    id=f"stale:{group.name}:{status.expected_partition}",
                    kind="stale",
                    severity="WARN",
                    group=group.name,
                    title=f"{group.name} is stale",
                    message=status.summary(),
                    partition=status.expected_partition,
                    details={"last_partition": status.last_partition, "expected_partition": status.expected_partition},
                )
                _deliver([alert], sinks, cursor.partial, sent)
                cursor.partial = {}
                cursor.stale[group.name] = status.expected_partition or ""
    except AlertDeliveryError as exc:
        return sent, str(exc)
    return sent, None


def alert_sensor(
    groups: Sequence[FeatureGroup], *, name: str = "feature_quality_alerts", minimum_interval_seconds: int = 60
) -> dg.SensorDefinition:
    """The sensor sending quality, drift, failure and freshness alerts for these groups."""
    watched = [g for g in groups if g.partitions is not None and g.freshness is not None]

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once per failed check, drift alarm, failed materialization and stale feature group.",
    )
    def _alerts(context: dg.SensorEvaluationContext, feature_platform_alerts: AlertSinksResource, feature_platform_store: FeatureStoreResource):
        if context.cursor is None:
            # First tick: watch from now on rather than alerting on the instance's whole history.
            return dg.SensorResult(skip_reason="started watching runs", cursor=AlertCursor.starting_now(context.instance).dump())
        cursor = AlertCursor.parse(context.cursor)
        offline = feature_platform_store.build_store(watched).offline
        sent, error = evaluate_alerts(context.instance, cursor, feature_platform_alerts.sinks(feature_platform_store.home), groups=watched, offline=offline)
        for alert in sent:
            context.log.info(f"alert sent: {alert.title} [{alert.severity}] {alert.partition or ''}")
        if error:
            context.log.error(error)
            return dg.SensorResult(skip_reason=f"delivery failed, will retry: {error}", cursor=cursor.dump())
        return dg.SensorResult(skip_reason=None if sent else "nothing to alert", cursor=cursor.dump())

    return _alerts
