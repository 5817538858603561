"""The alert sensor, evaluated with `build_sensor_context` against a real local HTTP server."""

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from feature_platform.orchestration.alerting import AlertCursor, alert_sensor, evaluate_alerts
from feature_platform.quality.alerts import Alert, FileSink, WebhookSink, read_alerts, slack_payload
from feature_platform.store import FeatureStore
from tests.quality_fixtures import materialize, payment_group, payments, repository, resources


class Receiver:
    """A real HTTP server on a free port that records the JSON bodies posted to it; `fail` makes it answer 500."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.fail = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.fail:
                    self.send_response(500)
                else:
                    receiver.bodies.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def alerts(self) -> list[dict]:
        return [b["alert"] for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def tick(instance: dg.DagsterInstance, home: Path, url: str, cursor: str | None) -> dg.SensorResult:
    """One evaluation of the alert sensor, as the daemon would run it (`cursor=None`: its first tick)."""
    sensor = alert_sensor([payment_group(freshness=None)])
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(home, webhook_url=url))
    return sensor(context)


def test_failed_checks_and_runs_arrive_at_the_webhook_exactly_once(tmp_path: Path, receiver: Receiver) -> None:
    instance = dg.DagsterInstance.ephemeral()
    defs = repository(payment_group(), payments(negative_on=("2024-05-02",), large_on=("2024-05-01",)))
    start = tick(instance, tmp_path, receiver.url, None).cursor
    materialize(defs, tmp_path, ("raw", "features"), "2024-05-01", instance=instance)  # WARN: large amount
    materialize(defs, tmp_path, ("raw", "features"), "2024-05-02", instance=instance)  # ERROR: blocked

    first = tick(instance, tmp_path, receiver.url, start)
    kinds = sorted((a["kind"], a["severity"], a["check"] or "") for a in receiver.alerts)
    assert kinds == [
        ("check_failed", "ERROR", "last_amount_in_range"),
        ("check_failed", "WARN", "amount_plausible"),
        ("materialization_failed", "ERROR", ""),
    ]
    blocked = next(a for a in receiver.alerts if a["check"] == "last_amount_in_range")
    assert blocked["partition"] == "2024-05-02" and blocked["group"] == "payment_features"
    assert blocked["details"]["failure_count"] == 3
    assert receiver.bodies[0]["text"].startswith(":")  # Slack-compatible `text`

    second = tick(instance, tmp_path, receiver.url, first.cursor)
    restarted = tick(instance, tmp_path, receiver.url, AlertCursor.parse(second.cursor).dump())
    assert len(receiver.alerts) == 3
    assert second.skip_reason.skip_message == restarted.skip_reason.skip_message == "nothing to alert"
    assert [a["id"] for a in read_alerts(tmp_path / "alerts.jsonl")] == [a["id"] for a in receiver.alerts]


def test_a_backfill_failing_on_two_partitions_is_one_alert_naming_both(tmp_path: Path, receiver: Receiver) -> None:
    instance = dg.DagsterInstance.ephemeral()
    defs = repository(payment_group(), payments(negative_on=("2024-05-02", "2024-05-04")))
    start = tick(instance, tmp_path, receiver.url, None).cursor
    materialize(defs, tmp_path, ("raw", "features"), "2024-05-01", "2024-05-05", instance=instance)
    tick(instance, tmp_path, receiver.url, start)
    (check,) = [a for a in receiver.alerts if a["kind"] == "check_failed"]
    assert check["partition"] == "2024-05-02, 2024-05-04"
    assert check["details"]["failed_partitions"] == ["2024-05-02", "2024-05-04"] and check["details"]["failure_count"] == 6


def test_a_later_run_is_alerted_on_the_next_tick_only(tmp_path: Path, receiver: Receiver) -> None:
    instance = dg.DagsterInstance.ephemeral()
    defs = repository(payment_group(), payments(large_on=("2024-05-01", "2024-05-02")))
    cursor = tick(instance, tmp_path, receiver.url, None).cursor
    materialize(defs, tmp_path, ("raw", "features"), "2024-05-01", instance=instance)
    cursor = tick(instance, tmp_path, receiver.url, cursor).cursor
    materialize(defs, tmp_path, ("raw", "features"), "2024-05-02", instance=instance)
    tick(instance, tmp_path, receiver.url, cursor)
    assert [a["partition"] for a in receiver.alerts] == ["2024-05-01", "2024-05-02"]


def test_a_webhook_outage_is_retried_without_duplicating_what_was_delivered(tmp_path: Path, receiver: Receiver) -> None:
    instance = dg.DagsterInstance.ephemeral()
    defs = repository(payment_group(), payments(negative_on=("2024-05-01",)))
    start = tick(instance, tmp_path, receiver.url, None).cursor
    materialize(defs, tmp_path, ("raw", "features"), "2024-05-01", instance=instance)
    receiver.fail = True
    failed = tick(instance, tmp_path, receiver.url, start)
    assert "delivery failed, will retry" in failed.skip_reason.skip_message
    assert len(read_alerts(tmp_path / "alerts.jsonl")) == 1  # the file sink got the first alert
    receiver.fail = False
    tick(instance, tmp_path, receiver.url, failed.cursor)
    assert len(receiver.alerts) == 2
    assert len(read_alerts(tmp_path / "alerts.jsonl")) == 2


def test_a_drift_alarm_is_one_alert_with_the_report(tmp_path: Path, receiver: Receiver) -> None:
    instance = dg.DagsterInstance.ephemeral()
    defs = repository(payment_group(), payments(shift_from="2024-05-04"))
    materialize(defs, tmp_path, ("raw", "features"), "2024-05-01", "2024-05-04", instance=instance)
    start = tick(instance, tmp_path, receiver.url, None).cursor
    materialize(defs, tmp_path, ("drift",), "2024-05-04", instance=instance)
    tick(instance, tmp_path, receiver.url, start)
    (alert,) = receiver.alerts
    assert (alert["kind"], alert["severity"], alert["partition"]) == ("drift", "WARN", "2024-05-04")
    assert alert["details"]["report_path"].endswith("reports/test/payment_features/2024-05-04.html")


def test_a_stale_group_is_alerted_once_per_missing_partition(tmp_path: Path) -> None:
    group = payment_group()
    store = FeatureStore([group], offline_root=tmp_path / "offline", project="test")
    store.apply()
    store.write_partition("payment_features", "2024-05-01", payments()(datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 2, tzinfo=timezone.utc)).rename(columns={"amount": "last_amount"}))
    sinks = {"file": FileSink(str(tmp_path / "alerts.jsonl"))}
    instance = dg.DagsterInstance.ephemeral()
    cursor = AlertCursor()

    def at(when: str) -> list[Alert]:
        sent, error = evaluate_alerts(instance, cursor, sinks, groups=[group], offline=store.offline, now=datetime.fromisoformat(when))
        assert error is None
        return sent

    assert at("2024-05-02T05:00+00:00") == []  # day closed 5 hours ago, within the 6-hour freshness
    assert [a.partition for a in at("2024-05-03T07:00+00:00")] == ["2024-05-02"]
    assert at("2024-05-03T09:00+00:00") == []
    assert [a.message for a in at("2024-05-04T07:00+00:00")] == [
        "feature group 'payment_features' is stale: newest partition 2024-05-01, expected 2024-05-03 by 2024-05-04T07:00+00:00"
    ]


def test_the_first_tick_starts_watching_without_alerting_on_history(tmp_path: Path, receiver: Receiver) -> None:
    instance = dg.DagsterInstance.ephemeral()
    defs = repository(payment_group(), payments(negative_on=("2024-05-01",)))
    materialize(defs, tmp_path, ("raw", "features"), "2024-05-01", instance=instance)
    first = tick(instance, tmp_path, receiver.url, None)
    assert first.skip_reason.skip_message == "started watching runs"
    tick(instance, tmp_path, receiver.url, first.cursor)
    assert receiver.alerts == []


def test_slack_payload_carries_text_blocks_and_the_alert() -> None:
    alert = Alert(id="x", kind="check_failed", severity="WARN", group="g", title="check 'r' failed on g", message="3 rows", partition="2024-05-01")
    payload = slack_payload(alert)
    assert payload["text"] == ":warning: [WARN] check 'r' failed on g (g partition 2024-05-01)\n3 rows"
    assert payload["blocks"][0]["text"]["text"] == payload["text"] and payload["alert"]["id"] == "x"


def test_webhook_sink_reports_an_unreachable_endpoint(tmp_path: Path) -> None:
    from feature_platform.quality.alerts import AlertDeliveryError

    alert = Alert(id="x", kind="stale", severity="WARN", group="g", title="t", message="m")
    with pytest.raises(AlertDeliveryError, match="failed for alert x"):
        WebhookSink("http://127.0.0.1:9/none", timeout=2).send(alert)
