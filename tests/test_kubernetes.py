"""The Kubernetes deployment with dagster-k8s installed: the instance loads with its K8sRunLauncher, and a
backfill run launched through it sends the Job the cluster would run.

No cluster here: a small HTTP server stands in for the Kubernetes API server and records the Job the real
launcher (and the real Kubernetes client) posts. What this cannot show: the pod starting, the step pods a
`k8s_job_executor` would create, the Helm chart rendering (no `helm` binary in Debian or PyPI).
"""

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.test_postgres_instance import postgres_problem

pytest.importorskip("dagster_k8s", reason="dagster-k8s is not installed: pip install 'feature-platform[k8s]'")

ROOT = Path(__file__).resolve().parents[1]
K8S_INSTANCE = yaml.safe_load((ROOT / "deploy" / "dagster.k8s.yaml").read_text())
VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
IMAGE = "registry.example.com/feature-platform:0.1.0"
RUN_RESOURCES = VALUES["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"]["resources"]


class KubernetesApi(http.server.BaseHTTPRequestHandler):
    """Accepts every POST as created (201, the body echoed) and keeps it: what the launcher asked the cluster for."""

    posted: list[tuple[str, dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.posted.append((self.path, body))
        answer = json.dumps(body).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kubeconfig(tmp_path):
    """A kubeconfig naming the stand-in API server; yields its path and the list of posted objects."""
    KubernetesApi.posted = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KubernetesApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield path, KubernetesApi.posted
    server.shutdown()


def launcher_config(kubeconfig: Path) -> dict:
    """deploy/dagster.k8s.yaml's run launcher as written, pointed at a kubeconfig instead of the in-cluster account."""
    launcher = json.loads(json.dumps(K8S_INSTANCE["run_launcher"]))
    launcher["config"].update({"load_incluster_config": False, "kubeconfig_file": str(kubeconfig)})
    return launcher


@pytest.mark.postgres
@pytest.mark.skipif(postgres_problem() is not None, reason=f"no local PostgreSQL: {postgres_problem()}")
def test_the_k8s_instance_loads_with_its_run_launcher(tmp_path, kubeconfig, monkeypatch):
    config = {**K8S_INSTANCE, "run_launcher": launcher_config(kubeconfig[0])}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    for name, value in {"DAGSTER_PG_USERNAME": "root", "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_DB": "test",
                        "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "K8sRunLauncher"
        assert launcher.env_secrets == ["feature-platform-env"]
        assert launcher.service_account_name == "feature-platform"
        assert launcher.run_k8s_config["container_config"] == {"resources": RUN_RESOURCES}



def test_a_backfill_run_becomes_a_job_with_the_image_resources_secrets_and_code_location(tmp_path, kubeconfig):
    path, posted = kubeconfig
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The deployment's launcher; runs go to it at once (the queued coordinator would need the daemon).
    instance = {"run_launcher": launcher_config(path), "telemetry": {"enabled": False},
                "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    secret_names = {"FEATURE_PLATFORM_REDIS_URL", "FEATURE_PLATFORM_ALERT_WEBHOOK_URL", "AWS_SECRET_ACCESS_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in secret_names}
    env.update({"DAGSTER_HOME": str(home), "DAGSTER_CURRENT_IMAGE": IMAGE, "FEATURE_PLATFORM_REDIS_URL": "redis://:inline-secret@redis:6379/0"})
    tags = {"dagster/asset_partition_range_start": "2024-05-01", "dagster/asset_partition_range_end": "2024-05-31", "dagster/backfill": "b1"}
    command = [str(Path(sys.executable).parent / "dagster"), "job", "launch", "-f", "definitions.py", "-a", "defs",
               "-j", "__ASSET_JOB", "--tags", json.dumps(tags)]

    launched = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert launched.returncode == 0, launched.stderr[-3000:]
    assert [p for p, _ in posted] == ["/apis/batch/v1/namespaces/default/jobs"]
    job = posted[0][1]
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["resources"] == RUN_RESOURCES
    assert container["envFrom"] == [{"secretRef": {"name": "feature-platform-env"}}]
    assert pod["spec"]["serviceAccountName"] == "feature-platform"
    # Secrets only by reference: no value of the launching process's environment is copied into the pod.
    assert "inline-secret" not in json.dumps(job)
    assert {e["name"] for e in container["env"]} <= {"DAGSTER_RUN_JOB_NAME", "DAGSTER_HOME"}
    run_args = json.loads(container["args"][3])
    origin = run_args["pipeline_origin"]["repository_origin"]
    assert origin["code_pointer"]["python_file"] == "definitions.py" and origin["code_pointer"]["fn_name"] == "defs"
    assert origin["container_image"] == IMAGE
    assert pod["metadata"]["labels"]["dagster/code-location"] == "definitions.py-defs"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "run_worker"
