"""Start-up benchmark; prints JSON. `python bench/startup.py [--runs N]`.

Each run is a fresh interpreter (as every CLI command, `dagster dev` code server and
step process is): the wall time of `import definitions` of the demo repository, of
`import feature_platform` alone, of both with Evidently (what every start-up paid before
it was imported where drift is computed), and the modules that cost the most (`-X importtime`).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(code: str) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds a fresh interpreter takes to run `code` (start-up included).

    On a shared machine the CPU time is the steadier figure: waiting for a core does not count.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heaviest(code: str, count: int = 8) -> list[dict[str, object]]:
    """The top-level imports with the largest cumulative time, from `python -X importtime`."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if cumulative.isdigit() and not name.startswith(" ") and "." not in name:
            rows.append({"module": name, "seconds": int(cumulative) / 1e6})
    return sorted(rows, key=lambda r: -r["seconds"])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {}
    cases = {
        "python": "pass",
        "import feature_platform": "import feature_platform",
        "import definitions": "import definitions",
        # Before issue 13 the drift module imported Evidently at the top: every start-up paid for it.
        "import definitions + evidently (before)": "import evidently, evidently.presets; import definitions",
    }
    for name, code in cases.items():
        timed(code)  # warm the file cache
        runs = [timed(code) for _ in range(args.runs)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        results[name] = {"wall_median_s": round(statistics.median(walls), 3), "wall_min_s": round(min(walls), 3),
                         "cpu_median_s": round(statistics.median(cpus), 3)}
    load = os.getloadavg()[0]
    print(json.dumps({"cpus": os.cpu_count(), "load_average_1m": round(load, 1), "results": results,
                      "heaviest_imports": heaviest("import definitions")}, indent=2))


if __name__ == "__main__":
    main()
