"""Worker processes for the feature server: the app is built once, then forked, all workers on one socket.

Forking the built app (rather than starting fresh interpreters that import
everything again, as uvicorn's own supervisor does) starts N workers in the
time of one, and shares the imported code between them. The supervisor
forwards SIGTERM and SIGINT to the workers, each of which stops accepting,
finishes its requests in flight and exits; a worker that dies on its own is
replaced.
"""

import ctypes
import logging
import os
import signal
import sys
import time

import uvicorn

log = logging.getLogger(__name__)
# Workers dying this often are failing, not unlucky: stop rather than fork them forever.
MAX_DEATHS, DEATHS_WINDOW_S = 5, 10.0
PR_SET_PDEATHSIG = 1


def run_workers(config: uvicorn.Config, workers: int) -> int:
    """Serve `config`'s app (already built) with `workers` forked processes; the exit code once all stopped."""
    if workers == 1:
        _serve(config, None)
        return 0
    sock = config.bind_socket()
    children: set[int] = set()
    stopping = False

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            _stop_with_parent()
            code = 1
            try:
                _serve(config, [sock])
                code = 0
            finally:
                os._exit(code)
        children.add(pid)

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:  # exited already; os.wait below reaps it
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        if not stopping:
            fork()
    failed = False
    deaths: list[float] = []
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        now = time.monotonic()
        deaths = [t for t in deaths if now - t < DEATHS_WINDOW_S] + ([] if stopping else [now])
        if stopping:
            failed = failed or code != 0
        elif len(deaths) >= MAX_DEATHS:
            log.error("feature server workers died %s times in %s s (last: %s, exit %s); stopping", len(deaths), DEATHS_WINDOW_S, pid, code)
            failed = True
            stop(signal.SIGTERM, None)
        else:
            log.error("feature server worker %s exited with %s; starting another", pid, code)
            fork()
    sock.close()
    return 1 if failed else 0


def _serve(config: uvicorn.Config, sockets: list | None) -> None:
    """Run one uvicorn server until SIGTERM or SIGINT, then return (exit 0) after its graceful shutdown."""
    # uvicorn re-raises the signal that stopped it under the handlers it found; ignored ones end nothing.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_with_parent() -> None:
    """On Linux, have the kernel send this worker SIGTERM if the supervisor dies (even by SIGKILL)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
