"""The deployment files load: Helm values agree with the code's environment, the K8s instance config is valid."""

import re
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.test_postgres_instance import postgres_problem

ROOT = Path(__file__).resolve().parents[1]
VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
K8S_INSTANCE = yaml.safe_load((ROOT / "deploy" / "dagster.k8s.yaml").read_text())
SECRET_ONLY = {"FEATURE_PLATFORM_REDIS_URL", "FEATURE_PLATFORM_ALERT_WEBHOOK_URL"}  # from the feature-platform-env secret
K8S_RUN_LAUNCHER_KEYS = {
    "instance_config_map", "dagster_home", "service_account_name", "env_secrets", "env_config_maps", "env_vars",
    "job_namespace", "image_pull_policy", "load_incluster_config", "kubeconfig_file", "run_k8s_config", "job_image",
}


def test_the_code_deployment_sets_every_variable_the_resources_read() -> None:
    documented = set(re.findall(r"FEATURE_PLATFORM_[A-Z_]+", (ROOT / "resources" / "__init__.py").read_text()))
    deployment = VALUES["dagster-user-deployments"]["deployments"][0]
    assert documented - SECRET_ONLY <= {e["name"] for e in deployment["env"]}
    assert deployment["dagsterApiGrpcArgs"][:2] == ["--python-file", "definitions.py"]


def test_run_pods_get_the_same_secrets_as_the_code_server() -> None:
    launcher = VALUES["runLauncher"]
    deployment = VALUES["dagster-user-deployments"]["deployments"][0]
    assert launcher["type"] == "K8sRunLauncher"
    assert launcher["config"]["k8sRunLauncher"]["envSecrets"] == deployment["envSecrets"]


def test_the_k8s_instance_launches_runs_as_kubernetes_jobs() -> None:
    launcher = K8S_INSTANCE["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert set(launcher["config"]) <= K8S_RUN_LAUNCHER_KEYS


@pytest.mark.postgres
@pytest.mark.skipif(postgres_problem() is not None, reason=f"no local PostgreSQL: {postgres_problem()}")
def test_the_k8s_instance_config_loads_with_its_storage_coordinator_and_log_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {k: v for k, v in K8S_INSTANCE.items() if k != "run_launcher"}  # with the launcher: tests/test_kubernetes.py
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    for name, value in {"DAGSTER_PG_USERNAME": "root", "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_DB": "test",
                        "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        assert instance.run_retries_max_retries == 1
