"""A stream consumer in its own process, for the crash tests: `python -m tests.stream_worker OFFLINE_ROOT REDIS_URL BATCH`.

It keeps no retention: after each offline commit the stream is trimmed up to what both sinks stored, so a
restart finds only the entries it must read again.
"""

import json
import sys
from datetime import timedelta
from pathlib import Path

from tests.stream_fixtures import stream_store


def main() -> None:
    offline_root, redis_url, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = stream_store(Path(offline_root), redis_url)
    with store.stream_processor("card_windows", consumer="worker", batch_size=batch_size, offline_batch=batch_size * 5,
                                retention=timedelta(0)) as processor:
        stats = processor.run(until_idle=True)
    print(json.dumps(stats.as_dict()), flush=True)


if __name__ == "__main__":
    main()
