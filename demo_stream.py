"""A small generator for the demo's transaction stream: `python -m demo_stream --rate 50 --seconds 60`.

Publishes generated card transactions (stamped now) to the `card_activity`
stream of the repository's embedded (or configured) Redis. Consume them with
`feature-platform stream card_activity`, or turn on the `card_activity_stream`
sensor in the Dagster UI.
"""

import argparse
import time
from datetime import timedelta
from pathlib import Path

from assets.streaming import generate_transactions
from feature_platform import FeatureStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to publish")
    args = parser.parse_args()
    store = FeatureStore.from_repo(Path(__file__).resolve().parent)
    began, sent, tick = time.monotonic(), 0, 0
    while time.monotonic() - began < args.seconds:
        due = int((time.monotonic() - began) * args.rate) - sent
        if due > 0:
            events = generate_transactions(due, seed=tick, spread=timedelta(seconds=1))
            store.publish_events("card_activity", [{k: v for k, v in e.items() if k != "is_fraud"} for e in events])
            sent, tick = sent + due, tick + 1
        time.sleep(0.1)
    print(f"published {sent} transactions to the card_activity stream in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
