"""`dagster dev` as the tests run it: a free port of 127.0.0.1, temporary homes, its own process group.

`dagster dev` ignores SIGINT, so it is stopped by killing its whole process
group (webserver, daemon, code server) by the leader's id.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 180
WORKSPACE = """
{ workspaceOrError {
    __typename
    ... on Workspace { locationEntries { name loadStatus locationOrLoadError {
        __typename ... on PythonError { message } } } }
} }
"""


@dataclass(frozen=True)
class Server:
    """A running `dagster dev`: its base URL and the file its output goes to."""

    url: str
    log: Path


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(server: Server, query: str) -> dict[str, Any]:
    """POST a GraphQL query to the webserver; fail on GraphQL errors."""
    request = urllib.request.Request(
        f"{server.url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def log_tail(log: Path, lines: int = 40) -> str:
    """The server's last output lines, for failure messages."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_until_loaded(server: Server, process: subprocess.Popen) -> None:
    """Poll until the webserver answers and the code location has loaded without error."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode}:\n{log_tail(server.log)}")
        try:
            workspace = graphql(server, WORKSPACE)["workspaceOrError"]
        except OSError:
            time.sleep(0.5)
            continue
        entries = workspace.get("locationEntries") or []
        errors = [e for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
        if errors:
            pytest.fail(f"code location failed to load: {errors[0]['locationOrLoadError']['message']}")
        if entries and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries):
            return
        time.sleep(0.5)
    pytest.fail(f"dagster dev not ready after {STARTUP_SECONDS} s:\n{log_tail(server.log)}")


def stop(process: subprocess.Popen) -> None:
    """Kill the server's whole process group (webserver, daemon, code server)."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        try:  # the group may outlive its leader for a moment
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


@contextmanager
def dagster_dev(root: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`dagster dev` over the repository's workspace.yaml with DAGSTER_HOME and FEATURE_PLATFORM_HOME under `root`."""
    dagster_home = root / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    bin_dir = Path(sys.executable).parent
    full_env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "FEATURE_PLATFORM_HOME": str(root / "feature_platform"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        **(env or {}),
    }
    log = root / "dagster-dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", log)
    try:
        wait_until_loaded(server, process)
        yield server
    finally:
        stop(process)
