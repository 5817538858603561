"""Alerts and where they go: a JSON webhook (Slack-compatible payload) and a JSON-lines file.

An `Alert` has a stable `id` (e.g. run, check and partition) so a sender that
remembers what it delivered never sends the same alert twice.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

KINDS = ("check_failed", "drift", "materialization_failed", "stale", "stream_lag")
ICONS = {"ERROR": ":red_circle:", "WARN": ":warning:"}


@dataclass(frozen=True)
class Alert:
    """One thing someone should look at: a failed check, a drift alarm, a failed run or a stale group."""

    id: str
    kind: str
    severity: str
    group: str
    title: str
    message: str
    partition: str | None = None
    run_id: str | None = None
    check: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """A one-paragraph, human-readable form (Slack `text`)."""
        where = f" partition {self.partition}" if self.partition else ""
        return f"{ICONS.get(self.severity, '')} [{self.severity}] {self.title} ({self.group}{where})\n{self.message}".strip()


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook payload (`text` plus a section block) that also carries the alert as JSON."""
    return {
        "text": alert.text(),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": alert.text()}}],
        "alert": alert.to_dict(),
    }


class AlertSink(Protocol):
    def send(self, alert: Alert) -> None: ...


class AlertDeliveryError(RuntimeError):
    """A sink could not deliver an alert."""


def endpoint(url: str) -> str:
    """`scheme://host[:port]` of a URL: webhook URLs carry their secret in the path (and credentials), never shown."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


@dataclass(frozen=True)
class WebhookSink:
    """POSTs each alert as JSON to `url` (a Slack incoming webhook or any JSON endpoint)."""

    url: str = field(repr=False)  # its path is a secret
    timeout: float = 10.0

    def send(self, alert: Alert) -> None:
        body = json.dumps(slack_payload(alert), default=str).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if response.status >= 300:
                    raise AlertDeliveryError(f"webhook answered HTTP {response.status} for alert {alert.id}")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise AlertDeliveryError(f"webhook {endpoint(self.url)} failed for alert {alert.id}: {exc}") from exc


@dataclass(frozen=True)
class FileSink:
    """Appends each alert as one JSON line to `path`."""

    path: str

    def send(self, alert: Alert) -> None:
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(alert.to_dict(), default=str) + "\n")


def read_alerts(path: str | Path) -> list[dict[str, Any]]:
    """The alerts a `FileSink` wrote, oldest first."""
    target = Path(path)
    if not target.exists():
        return []
    return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines() if line.strip()]
