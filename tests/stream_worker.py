"""A stream consumer in its own process, for the crash tests: `python -m tests.stream_worker OFFLINE_ROOT REDIS_URL BATCH`."""

import json
import sys
from pathlib import Path

from tests.stream_fixtures import stream_store


def main() -> None:
    offline_root, redis_url, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = stream_store(Path(offline_root), redis_url)
    with store.stream_processor("card_windows", consumer="worker", batch_size=batch_size, offline_batch=batch_size * 5) as processor:
        stats = processor.run(until_idle=True)
    print(json.dumps(stats.as_dict()), flush=True)


if __name__ == "__main__":
    main()
