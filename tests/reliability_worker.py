"""A writer process for the fault tests: writes `events` partitions and prints a JSON result.

    python tests/reliability_worker.py write ROOT FIRST LAST ROWS WRITER [REPEAT] [GO_FILE] [FSIZE_LIMIT]
    python tests/reliability_worker.py sync ROOT REDIS_URL

`write` writes the partitions FIRST..LAST (inclusive) in one commit, REPEAT times; waits for GO_FILE
to exist first (so that two workers start together); with FSIZE_LIMIT bytes, runs under
`RLIMIT_FSIZE` (a file-size quota: writes past it fail with EFBIG).
"""

import json
import resource
import signal
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from reliability_fixtures import events, frame, make_store


def write(root: str, first: str, last: str, rows: int, writer: str, repeat: int, go_file: str, fsize_limit: int) -> dict:
    if fsize_limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
    store = make_store(Path(root))
    days = []
    current = date.fromisoformat(first)
    while current <= date.fromisoformat(last):
        days.append(current.isoformat())
        current += timedelta(days=1)
    df = pd.concat([frame(d, rows, writer=writer) for d in days], ignore_index=True)
    while go_file and not Path(go_file).exists():
        time.sleep(0.001)
    versions = []
    try:
        for _ in range(repeat):
            versions.append(store.offline.write_partitions(events, first, last, df).version)
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc), "versions": versions}
    return {"ok": True, "versions": versions}


def sync(root: str, url: str) -> dict:
    store = make_store(Path(root), online_url=url)
    try:
        report = store.sync_to_online("events")
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    return {"ok": True, "rows_written": report.rows_written}


if __name__ == "__main__":
    if sys.argv[1] == "sync":
        print(json.dumps(sync(*sys.argv[2:4])), flush=True)
        sys.exit(0)
    command, root, first, last, rows, writer, *rest = sys.argv[1:]
    assert command == "write", command
    repeat = int(rest[0]) if len(rest) > 0 else 1
    go_file = rest[1] if len(rest) > 1 else ""
    fsize_limit = int(rest[2]) if len(rest) > 2 else 0
    print(json.dumps(write(root, first, last, int(rows), writer, repeat, go_file, fsize_limit)), flush=True)
