"""A small in-process token-bucket rate limiter, and a bounded set of recently seen keys.

Written here rather than taken from slowapi/limits: those are not dependencies of sonogan,
and a reader study runs as one process on one machine, so a dict of buckets behind a lock is
all that is needed (a multi-process deployment would need a shared store such as Redis).

Example:
    >>> clock = iter([0.0, 0.0, 0.0, 1.0]).__next__
    >>> bucket = RateLimiter(rate=1.0, burst=2, clock=clock)
    >>> [bucket.take("ip"), bucket.take("ip"), bucket.take("ip"), bucket.take("ip")]
    [True, True, False, True]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable


class RateLimiter:
    """``burst`` requests at once per key, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.clock, self.max_keys = rate, burst, clock, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate)

    def allowed(self, key: str) -> bool:
        """Whether ``key`` has a token left, without using it."""
        with self._lock:
            return self._level(key, self.clock()) >= 1.0

    def take(self, key: str) -> bool:
        """Use one token of ``key``; False (and nothing used) when the bucket is empty."""
        with self._lock:
            now = self.clock()
            tokens = self._level(key, now)
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                # forget full buckets first: they hold no state a fresh bucket would not
                self._buckets = {k: v for k, v in self._buckets.items() if self._level(k, now) < self.burst}
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            return True


class RecentKeys:
    """A bounded set of recently seen keys (least recently seen forgotten first).

    Example:
        >>> seen = RecentKeys(max_keys=2)
        >>> seen.add("a"); seen.add("b"); seen.add("c")
        >>> ["a" in seen, "b" in seen, "c" in seen]
        [False, True, True]
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys
