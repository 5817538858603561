"""Retrieval and training datasets on S3: a real S3-compatible server (moto, in its own process)."""

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest

from feature_platform import FeatureStore
from tests.retrieval_fixtures import merchant_stats, numeric_view, user_rows, user_stats

MOTO = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_options() -> Iterator[dict[str, str]]:
    """Storage options of a fresh moto S3 server with the bucket `fp-test`."""
    if not Path(MOTO).exists():
        pytest.fail("moto_server is not installed: pip install 'moto[server]' (a dev dependency)")
    port = free_port()
    server = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket="fp-test")
        yield {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_training_datasets_version_list_load_and_rebuild_on_s3(s3_options):
    store = FeatureStore(groups=[user_stats, merchant_stats], views=[numeric_view], offline_root="s3://fp-test/offline",
                         project="s3", storage_options=s3_options)
    store.apply()
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (3, 10.0, "a")}))
    entities = pd.DataFrame({"user_id": [1, 2], "merchant_id": [7, 7], "event_time": pd.to_datetime(["2024-05-02", "2024-05-02"])})
    first = store.create_training_dataset("numeric", entities)
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (4, 11.0, "b")}))
    second = store.create_training_dataset("numeric", entities)
    assert (first.uri, second.uri) == ("s3://fp-test/offline/s3/_training/numeric/v1", "s3://fp-test/offline/s3/_training/numeric/v2")
    assert [(m["name"], m["version"]) for m in store.list_training_datasets()] == [("numeric", 1), ("numeric", 2)]
    assert store.load_training_dataset("numeric", version=1)["txn_count"].tolist() == [3, pd.NA]
    assert store.load_training_dataset("numeric")["txn_count"].tolist() == [4, pd.NA]
    pd.testing.assert_frame_equal(store.rebuild_training_dataset("numeric", 1), store.load_training_dataset("numeric", version=1))
