"""The Dagster UI serves the demo repository: feature group assets, their lineage and partitions, and a screenshot.

Starts `dagster dev -w workspace.yaml` (what `make ui` runs) on a free port of
127.0.0.1 with a temporary DAGSTER_HOME and FEATURE_PLATFORM_HOME, in its own
process group because it ignores SIGINT, and stops it by killing the group.
"""

import shutil
import struct
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster_dev import Server, dagster_dev, graphql

import assets

pytestmark = pytest.mark.ui

# A wide CSS viewport rendered at 0.75 keeps the whole graph on one readable image.
WINDOW = (3000, 3000)
SCALE = 0.75
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ASSET_NODES = """
{ assetNodes {
    assetKey { path }
    groupName
    isPartitioned
    partitionDefinition { type description }
    partitionKeys
    dependencyKeys { path }
} }
"""
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`dagster dev` over the repository's workspace.yaml, on temporary homes."""
    with dagster_dev(tmp_path_factory.mktemp("ui")) as server:
        yield server


@pytest.fixture(scope="module")
def asset_nodes(server: Server) -> dict[tuple[str, ...], dict[str, Any]]:
    """The served asset nodes by key path."""
    return {tuple(n["assetKey"]["path"]): n for n in graphql(server, ASSET_NODES)["assetNodes"]}


computed_groups = [g for g in assets.feature_groups if g.compute]


@pytest.mark.parametrize("group", computed_groups, ids=lambda g: g.name)
def test_feature_group_asset_is_served_with_its_raw_sources(group, asset_nodes) -> None:
    node = asset_nodes.get(("features", group.name))
    assert node is not None, f"['features', '{group.name}'] missing; served: {sorted(asset_nodes)}"
    assert sorted(tuple(d["path"]) for d in node["dependencyKeys"]) == sorted(("raw", s) for s in group.sources)
    for source in group.sources:
        assert ("raw", source) in asset_nodes


@pytest.mark.parametrize("group", computed_groups, ids=lambda g: g.name)
def test_feature_group_asset_is_served_with_its_partitions(group, asset_nodes) -> None:
    node = asset_nodes[("features", group.name)]
    if group.partitions is None:
        assert node["isPartitioned"] is False
        assert node["partitionDefinition"] is None
    else:
        assert node["isPartitioned"] is True
        assert node["partitionDefinition"]["type"] == "TIME_WINDOW"
        assert node["partitionDefinition"]["description"].startswith("Daily")
        assert node["partitionKeys"][0] == group.partitions.start.isoformat()


def chromium(*args: str, user_data_dir: Path) -> subprocess.CompletedProcess:
    """Run headless Chromium with the flags that work here and a new, empty profile."""
    return subprocess.run(
        [
            shutil.which("chromium") or "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={user_data_dir}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--force-device-scale-factor={SCALE}",
            "--virtual-time-budget=20000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def graph_url(server: Server, asset_nodes: dict[tuple[str, ...], dict[str, Any]]) -> str:
    """The global asset graph with every asset group expanded (the UI collapses them by default)."""
    names = sorted({n["groupName"] for n in asset_nodes.values()})
    # The UI names groups `global@global:<group>`, or per code location behind a feature flag.
    ids = [f"global@global:{g}" for g in names] + [f"__repository__@feature_platform:{g}" for g in names]
    return f"{server.url}/asset-groups?" + urllib.parse.urlencode({"expanded": ",".join(ids)})


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header; fails if `data` is not a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_asset_graph_screenshot_shows_every_feature_group(server, asset_nodes, tmp_path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("Debian's `chromium` is not installed (`apt-get install -y chromium`; .ci/run installs it)")
    assert graphql(server, "mutation { setNuxSeen }")["setNuxSeen"] is True  # dismisses the community pop-up
    url = graph_url(server, asset_nodes)

    dom = chromium("--dump-dom", url, user_data_dir=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for group in computed_groups:
        assert group.name in dom.stdout, f"the rendered asset graph does not show '{group.name}'"

    shot = tmp_path / "asset-graph.png"
    run = chromium(f"--screenshot={shot}", url, user_data_dir=tmp_path / "profile-shot")
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert png_size(data) == (int(WINDOW[0] * SCALE), int(WINDOW[1] * SCALE))
    # The DOM check above proves the content; this catches an empty or blank capture.
    assert len(data) > 20_000, f"{shot} is only {len(data)} bytes"
    print(f"asset graph screenshot: {shot}")
