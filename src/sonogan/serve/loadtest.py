"""Run the app on loopback (in a thread, or as killable server processes) and drive many raters at once.

Used by the load test (20 concurrent raters, no lost answer), the crash test (the same while
the server is killed with SIGKILL and restarted), the browser test and the reader-study
benchmark. Traffic goes only to 127.0.0.1, every loop is bounded by the study's size or a
deadline, and each request has a timeout.

Example:
    >>> with running_server(create_app("sqlite://")) as base:       # doctest: +SKIP
    ...     report = rate_concurrently(base, {"ana": "TOKEN"})
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(app: FastAPI, timeout: float = 20.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) in a thread; yields the base URL, stops on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                          access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the reader-study server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def planned_answer(rater_index: int, position: int) -> dict[str, Any]:
    """The answer rater ``rater_index`` gives at ``position`` (deterministic, so it can be checked)."""
    return {"realism": 1 + (rater_index + position) % 5, "source_call": ("real", "synthetic")[(rater_index * 7 + position) % 2],
            "comment": f"r{rater_index}-p{position}"}


def _rate_all(base: str, token: str, rater_index: int, retries: int) -> list[float]:
    """Answer every image of one rater (fetching each image first); returns the answer latencies."""
    latencies: list[float] = []
    with httpx.Client(base_url=f"{base}/r/{token}", timeout=30.0) as client:
        state = client.get("/state").raise_for_status().json()
        while not state["done"]:
            client.get(f"/image/{state['item']}").raise_for_status()
            body = {"item": state["item"], **planned_answer(rater_index, state["answered"])}
            for _ in range(retries):
                start = time.perf_counter()
                response = client.post("/answer", json=body)
                if response.status_code != 429:
                    break
                time.sleep(float(response.headers.get("Retry-After", "1")))
            latencies.append(time.perf_counter() - start)
            state = response.raise_for_status().json()
    return latencies


def rate_concurrently(base: str, tokens: dict[str, str], retries: int = 5) -> dict[str, Any]:
    """Every rater (name -> token; index = order of ``tokens``) answers all images at the same time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        futures = [pool.submit(_rate_all, base, token, i, retries) for i, token in enumerate(tokens.values())]
        latencies = [t for f in futures for t in f.result()]
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {"raters": len(tokens), "answers": len(latencies), "wall_s": round(wall, 3),
            "answers_per_s": round(len(latencies) / wall, 1),
            "latency_ms_median": round(1000 * statistics.median(ordered), 1),
            "latency_ms_p95": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1)}


# Imports the app once, then forks one server process per line (a port) read from stdin and
# prints its pid: a restart after SIGKILL costs a fork, not the app's imports again.
FORK_SERVER = """
import os, signal, sys
import uvicorn
from sonogan.serve.app import create_app
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed servers are reaped by the kernel
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(line), log_level="warning", access_log=False)
        os._exit(0)
    print(pid, flush=True)
"""


class ServerProcesses:
    """Real ``uvicorn`` server processes over one database, each started on demand and killable.

    Example:
        >>> with ServerProcesses("runs/study.db") as servers:           # doctest: +SKIP
        ...     pid = servers.start(port)
        ...     servers.kill(pid)                                      # SIGKILL
    """

    def __init__(self, db: str) -> None:
        # one BLAS thread: the server processes are forks of this one (no thread pool survives a fork)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self._parent = subprocess.Popen([sys.executable, "-c", FORK_SERVER, db], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        self.pids: list[int] = []

    def start(self, port: int) -> int:
        """A new server on 127.0.0.1:``port``; returns its pid (it may still be starting)."""
        assert self._parent.stdin is not None and self._parent.stdout is not None
        self._parent.stdin.write(f"{port}\n")
        self._parent.stdin.flush()
        self.pids.append(int(self._parent.stdout.readline()))
        return self.pids[-1]

    def kill(self, pid: int, timeout: float = 30.0) -> None:
        """SIGKILL server ``pid`` and wait until it is gone (its port is free again)."""
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.01)
        raise RuntimeError(f"server process {pid} survived SIGKILL for {timeout:.0f} s")

    def __enter__(self) -> "ServerProcesses":
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._parent.kill()
        self._parent.wait(30)


def wait_until_up(base: str, timeout: float = 120.0) -> None:
    """Return once ``base`` answers HTTP (any status); RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{base}/static/style.css", timeout=5.0)
            return
        time.sleep(0.05)
    raise RuntimeError(f"no server at {base} after {timeout:.0f} s")


def rate_through_crashes(base: str, token: str, rater_index: int, acked: list[tuple[int, int, str]],
                         timeout: float = 300.0) -> None:
    """Answer every image of one rater while the server may die at any moment.

    A request that fails in transport (refused, cut, timed out) is retried from a fresh state
    once the server is back. Only a 200 to the answer counts as acknowledged: it is appended to
    ``acked`` as (rater index, position, item key). Any other HTTP error is raised.
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"{base}/r/{token}", timeout=10.0) as client:
        while time.monotonic() < deadline:
            try:
                state = client.get("/state").raise_for_status().json()
                if state["done"]:
                    return
                body = {"item": state["item"], **planned_answer(rater_index, state["answered"])}
                response = client.post("/answer", json=body)
                if response.status_code == 429:
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                response.raise_for_status()
                acked.append((rater_index, state["answered"], state["item"]))
            except httpx.TransportError:  # the server is down or restarting
                time.sleep(0.05)
    raise RuntimeError(f"rater {rater_index} did not finish within {timeout:.0f} s")
