"""Run the app on loopback in a background thread and drive many raters against it at once.

Used by the load test (20 concurrent raters, no lost answer), the browser test and the
reader-study benchmark. Traffic goes only to 127.0.0.1, every loop is bounded by the study's
size, and each request has a timeout.

Example:
    >>> with running_server(create_app("sqlite://")) as base:       # doctest: +SKIP
    ...     report = rate_concurrently(base, {"ana": "TOKEN"})
"""

from __future__ import annotations

import contextlib
import socket
import statistics
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
