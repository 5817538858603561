"""The quickstart's code runs as written and does what its comments say."""

import re
from pathlib import Path

import pandas as pd
import pytest

from feature_platform.online.redis_server import stop_server

QUICKSTART = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"


def python_blocks(markdown: Path) -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", markdown.read_text(), re.S))


def test_quickstart_runs_and_reads_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    namespace: dict = {"__name__": "quickstart"}
    try:
        exec(compile(python_blocks(QUICKSTART), str(QUICKSTART), "exec"), namespace)
    finally:
        stop_server(tmp_path / "quickstart-data")  # the online sync asset started the embedded Redis

    assert (namespace["first"].rows, namespace["first"].version) == (2, 0)
    assert len(namespace["rows"]) == 2
    assert len(namespace["as_first_written"]) == 2
    assert len(namespace["as_of_now"]) == 4
    computed = namespace["store"].read_group("computed_spend")
    assert computed[["user_id", "txn_count_1d", "amount_sum_1d"]].to_dict("records") == [
        {"user_id": 1, "txn_count_1d": 2, "amount_sum_1d": 15.0},
        {"user_id": 2, "txn_count_1d": 1, "amount_sum_1d": 7.5},
    ]
    assert (computed["event_time"] == pd.Timestamp("2024-05-02", tz="UTC")).all()
    assert (tmp_path / "quickstart-data" / "offline" / "default" / "user_spend" / "v1").is_dir()
