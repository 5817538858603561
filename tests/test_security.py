"""Security: secrets come only from the environment and never surface; projects are isolated."""

import logging
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from reliability_fixtures import day, events, frame, make_store, table_state, user

from feature_platform import ContractError, DailyPartitions, Feature, FeatureGroup, FeatureStore, RawSource, StorageError
from feature_platform.online.redis_server import free_port, start_server
from feature_platform.orchestration import FeatureStoreResource, build_definitions
from tests.s3_fixtures import s3_bucket, s3_endpoint  # noqa: F401 (fixtures)

PLANTED = "PLANTED-s3cr3t-7f3a9c"
DAILY = DailyPartitions(start="2024-05-01")


def produce_visits(start: datetime, end: datetime) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2, 2], "event_time": [start + timedelta(hours=h) for h in (1, 2, 3)]})


def count_visits(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    counts = inputs["visits"].groupby("user_id").size().rename("visit_count").reset_index()
    return counts.assign(event_time=start)


def broken_visits(inputs: dict[str, pd.DataFrame], start: datetime, end: datetime) -> pd.DataFrame:
    return count_visits(inputs, start, end).assign(user_id=None)


visits = RawSource("visits", partitions=DAILY, produce=produce_visits)


def visit_counts(compute) -> FeatureGroup:
    return FeatureGroup(
        "visit_counts", entities=[user], features=[Feature("visit_count", "int64")], partitions=DAILY,
        compute=compute, sources=["visits"],
    )


def env_resource(tmp_path: Path) -> FeatureStoreResource:
    """The resource as `resources/` builds it when the variables are set: every value an EnvVar."""
    return FeatureStoreResource(
        project=dg.EnvVar("FEATURE_PLATFORM_PROJECT"),
        home=str(tmp_path),
        redis_url=dg.EnvVar("FEATURE_PLATFORM_REDIS_URL"),
    )


def everything_recorded(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every event, log message, metadata value and the run's config, as the UI would get them."""
    run = instance.get_run_by_id(run_id)
    records = [dg.serialize_value(entry) for entry in instance.all_logs(run_id)]
    return "\n".join([*records, repr(run.run_config), repr(run.tags)])


SCENARIOS = {
    # name: (compute function, Redis reachable, run succeeds, words the event log must hold)
    "successful run": (count_visits, True, True, ("values written to Redis",)),
    "failing compute": (broken_visits, True, False, ("null join key",)),
    "unreachable redis": (count_visits, False, False, ("online store redis://:***@127.0.0.1", "Connection refused")),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_planted_secrets_never_reach_logs_metadata_events_or_the_delta_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture, scenario: str
) -> None:
    """Proves: with the Redis password (in its URL) and cloud keys and the server token in the environment,
    read through EnvVar, a materialization of raw, feature and online assets writes the secret nowhere: not
    in Dagster's event log, run config, materialization metadata, captured stdout/stderr/logging, nor the
    Delta commit log; this holds when the run succeeds, when the compute fails and when Redis is unreachable
    (the failure itself is reported, with the password redacted)."""
    compute, reachable, succeeds, words = SCENARIOS[scenario]
    server = start_server(tmp_path / "redis", password=PLANTED, persistent=False)
    port = server.port if reachable else free_port()
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", "secure")
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_URL", f"redis://:{PLANTED}@127.0.0.1:{port}/0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED)
    monkeypatch.setenv("FEATURE_PLATFORM_SERVER_TOKEN", PLANTED)
    caplog.set_level(logging.DEBUG)
    defs = build_definitions([visit_counts(compute)], sources=[visits])
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    FeatureStore([visit_counts(compute)], offline_root=tmp_path / "offline", project="secure").apply()

    try:
        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize(
            assets, partition_key="2024-05-02", resources={"feature_platform_store": env_resource(tmp_path)},
            instance=instance, raise_on_error=False,
        )
        recorded = everything_recorded(instance, result.run_id)
    finally:
        server.stop()

    assert result.success is succeeds
    assert {e.asset_key for e in result.get_asset_materialization_events() if e.asset_key} >= ({dg.AssetKey(["online", "visit_counts"])} if succeeds else set())
    for word in words:
        assert word in recorded
    out, err = capfd.readouterr()
    delta_log = "".join(p.read_text() for p in tmp_path.rglob("_delta_log/*.json"))
    for name, text in [("event log", recorded), ("stdout", out), ("stderr", err), ("logging", caplog.text), ("delta log", delta_log)]:
        assert PLANTED not in text, f"secret found in {name}"


def test_two_projects_on_one_offline_root_never_see_each_others_data(tmp_path: Path) -> None:
    """Proves: two projects sharing an offline root keep separate tables: each reads only its own rows,
    and rewriting a partition in one leaves the other's version and rows untouched."""
    alpha, beta = make_store(tmp_path, project="alpha"), make_store(tmp_path, project="beta")
    alpha.write_partition("events", day(1), frame(day(1), 3, writer="alpha"))
    beta.write_partition("events", day(1), frame(day(1), 5, writer="beta"))
    beta_before = table_state(beta)

    alpha.write_partition("events", day(1), frame(day(1), 2, writer="alpha-again"))
    alpha.ingest("events", frame(day(2), 4, writer="alpha"))

    assert set(alpha.read_group("events")["writer"]) == {"alpha-again", "alpha"}
    assert len(alpha.read_group("events")) == 6
    assert table_state(beta) == beta_before
    assert set(beta.read_group("events")["writer"]) == {"beta"}
    assert alpha.offline.table_uri(events) != beta.offline.table_uri(events)


def test_a_project_name_cannot_climb_out_of_the_offline_root(tmp_path: Path) -> None:
    """Proves: project names that would address another project's folder (separators, dots) are refused."""
    for project in ("../beta", "alpha/../beta", ".", "a b", ""):
        with pytest.raises(Exception) as raised:
            make_store(tmp_path, project=project)
        assert "project name" in str(raised.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "column, values",
    [("txn_count", [PLANTED, "2", "3"]), ("txn_count", [PLANTED, 2, 3]), ("writer", [PLANTED, 2, 3]), ("user_id", [1, PLANTED, 3])],
    ids=["text column for an int", "mixed int column", "mixed text column", "mixed key column"],
)
def test_contract_errors_name_the_problem_without_echoing_feature_values(tmp_path: Path, column: str, values: list) -> None:
    """Proves: a refused frame's error names group, column and rule but does not copy the (possibly
    sensitive) values of the frame into messages that end up in logs and alerts."""
    store = make_store(tmp_path)
    df = frame(day(1), 3)
    df[column] = values

    with pytest.raises(ContractError) as raised:
        store.write_partition("events", day(1), df)

    assert f"'{column}'" in str(raised.value) and PLANTED not in str(raised.value)


def test_every_dagster_ui_command_in_the_makefile_binds_localhost() -> None:
    """Proves: the commands that start the Dagster UI (`make ui`, and any other Makefile recipe running
    `dagster dev` or `dagster-webserver`) bind 127.0.0.1 explicitly and nothing binds 0.0.0.0."""
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    commands = [line for line in makefile.splitlines() if "dagster dev" in line or "dagster-webserver" in line]

    assert commands, "no Dagster UI command found in the Makefile"
    for command in commands:
        assert "-h 127.0.0.1" in command or "--host 127.0.0.1" in command, command
    assert "0.0.0.0" not in makefile


def test_a_failing_webhook_never_reveals_its_url(tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> None:
    """Proves: a webhook URL carries its secret in the path (Slack: /services/T…/B…/<token>); when delivery
    fails, the AlertDeliveryError, the alert sensor's skip reason (shown in the UI) and the logs name the
    endpoint's host only, never the path."""
    from feature_platform.orchestration.alerting import alert_sensor
    from feature_platform.quality.alerts import Alert, AlertDeliveryError, WebhookSink
    from tests.quality_fixtures import materialize, payment_group, payments, repository, resources

    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T000/B000/{PLANTED}"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AlertDeliveryError) as raised:
        WebhookSink(url, timeout=2).send(Alert(id="a1", kind="stale", severity="WARN", group="g", title="t", message="m"))

    instance = dg.DagsterInstance.ephemeral()
    sensor = alert_sensor([payment_group(freshness=None)])

    def tick(cursor: str | None) -> dg.SensorResult:
        return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(tmp_path, webhook_url=url)))

    start = tick(None).cursor
    materialize(repository(payment_group(), payments(negative_on=("2024-05-01",))), tmp_path, ("raw", "features"), "2024-05-01", instance=instance)
    failed = tick(start)

    skip = failed.skip_reason.skip_message
    assert f"webhook http://127.0.0.1:{port} failed" in str(raised.value) and "delivery failed" in skip
    out, err = capfd.readouterr()
    for name, text in [("error", str(raised.value)), ("skip reason", skip), ("logging", caplog.text), ("stdout", out), ("stderr", err)]:
        assert PLANTED not in text, f"webhook secret found in {name}"


def test_s3_keys_from_the_environment_never_appear_in_storage_errors_or_the_delta_log(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Proves: with S3 credentials planted in the environment (where deltalake reads them), a write to a bucket
    that does not exist fails with a StorageError naming the group and the table, and neither that error, the
    logs nor the commit log of a successful write on S3 contain the keys."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", f"AKIA{PLANTED}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED)
    caplog.set_level(logging.DEBUG)

    missing_bucket = FeatureStore(groups=[events], offline_root="s3://no-such-bucket/offline", project="reliability")
    with pytest.raises(StorageError) as raised:  # the write's registry check is its first read of the bucket
        missing_bucket.write_partition("events", day(1), frame(day(1), 3))
    make_store(f"s3://{s3_bucket}/offline").write_partition("events", day(1), frame(day(1), 3))

    assert "feature group 'events'" in str(raised.value) and "s3://no-such-bucket/offline" in str(raised.value)
    client = boto3.client("s3")
    logs = [client.get_object(Bucket=s3_bucket, Key=o["Key"])["Body"].read().decode()
            for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"] if "_delta_log" in o["Key"]]
    assert logs
    for name, text in [("error", str(raised.value)), ("logging", caplog.text), ("delta log", "".join(logs))]:
        assert PLANTED not in text, f"S3 key found in {name}"


def test_repository_resources_hold_credentials_as_env_var_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves: with the Redis URL and the alert webhook URL set in the environment, the repository's resources
    hold `EnvVar`s, i.e. the variables' names (what the Dagster UI shows), and never the secret values."""
    import importlib

    import resources

    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_URL", f"redis://:{PLANTED}@127.0.0.1:6379/0")
    monkeypatch.setenv("FEATURE_PLATFORM_ALERT_WEBHOOK_URL", f"https://hooks.example.com/services/{PLANTED}")
    try:
        configured = importlib.reload(resources)
        assert configured.feature_platform_store.redis_url.env_var_name == "FEATURE_PLATFORM_REDIS_URL"
        assert configured.feature_platform_alerts.webhook_url.env_var_name == "FEATURE_PLATFORM_ALERT_WEBHOOK_URL"
        assert PLANTED not in repr(configured.resources)
    finally:
        monkeypatch.undo()
        importlib.reload(resources)


def test_the_server_compares_tokens_in_constant_time_and_never_echoes_them(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves: every bearer-token check goes through `hmac.compare_digest` (time independent of where the
    strings differ), a wrong or missing token gets 401 without the expected token in the answer, and the
    right one is let through."""
    from fastapi.testclient import TestClient

    from feature_platform.serving import lookup, server

    compared = []
    real = lookup.hmac.compare_digest
    monkeypatch.setattr(lookup.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    client = TestClient(server.create_app(make_store(tmp_path, online_url=redis_url), token=PLANTED))
    body = {"entities": {"user_id": [1]}, "features": ["txn_count"]}

    wrong = client.post("/get-online-features", json=body, headers={"authorization": f"Bearer {PLANTED[:-1]}x"})
    missing = client.post("/get-online-features", json=body)
    right = client.post("/get-online-features", json=body, headers={"authorization": f"Bearer {PLANTED}"})

    assert (wrong.status_code, missing.status_code, right.status_code) == (401, 401, 200)
    assert len(compared) == 3 and all(b == f"Bearer {PLANTED}".encode() for _, b in compared)
    assert PLANTED not in wrong.text + missing.text + str(wrong.headers) + str(missing.headers)
