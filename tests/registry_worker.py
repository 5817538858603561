"""An apply in its own process, for the concurrency and SIGKILL tests; prints a JSON result.

    python tests/registry_worker.py ROOT GROUP EXTRA_FEATURES GO_FILE

Applies group GROUP (features `score`, `label`, then the comma-separated EXTRA_FEATURES as int64)
once GO_FILE exists, so that two workers apply at the same moment.
"""

import json
import sys
import time
from pathlib import Path

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore
from feature_platform.errors import FeaturePlatformError


def group(name: str, extra: list[str]) -> FeatureGroup:
    features = [Feature("score", "int64"), Feature("label", "string"), *(Feature(f, "int64") for f in extra)]
    return FeatureGroup(name, entities=[Entity("user", join_keys={"user_id": "int64"})], features=features,
                        partitions=DailyPartitions(start="2024-01-01"))


def main(root: str, name: str, extra: str, go_file: str) -> dict:
    store = FeatureStore([group(name, [f for f in extra.split(",") if f])], offline_root=root, project="changes")
    while go_file and not Path(go_file).exists():
        time.sleep(0.001)
    try:
        plan = store.apply()
    except FeaturePlatformError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    return {"ok": True, "actions": [i.action for i in plan.items]}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])), flush=True)
