"""Executors for the protocol's task graph: ``local`` (in this process, in submission order)
and ``ray`` (Ray Core tasks on a local or remote Ray cluster).

The protocol submits plain module-level functions with picklable arguments; ``after`` names
the handles a task must wait for (a classifier of the augmented arm waits for its fold's
generators and baseline). Every task writes its own piece of the run folder idempotently and
resumes from what is there, so a task whose worker dies is simply run again (Ray's
``max_retries``) and the numbers do not change.

Example:
    >>> ex = LocalExecutor()
    >>> a = ex.submit(pow, (2, 3))
    >>> b = ex.submit(pow, (3, 2), after=[a])
    >>> ex.gather([b, a])
    [9, 8]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

from sonogan.errors import SonoganInputError
from sonogan.registry import Registry

EXECUTORS: Registry[Callable[..., "Executor"]] = Registry("executor")


class Executor(ABC):
    """Submit calls with dependencies, then gather their results (in the order asked)."""

    name = "executor"

    @abstractmethod
    def submit(self, fn: Callable[..., Any], args: tuple, after: Sequence[Any] = (), cpus: float = 1.0,
               gpus: float = 0.0) -> Any:
        """Schedule ``fn(*args)`` once every handle in ``after`` has finished; returns a handle."""

    @abstractmethod
    def gather(self, handles: Sequence[Any]) -> list[Any]:
        """The results of ``handles`` (waiting for them), in the order given."""

    def close(self) -> None:
        """Release what the executor started (nothing for ``local``)."""


class _Pending:
    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn, self.args, self.done, self.value = fn, args, False, None


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Runs each call in this process, lazily and strictly in submission order: gathering fold
    0's tasks runs only those (and anything submitted before them), so the per-fold summaries
    appear as each fold ends, exactly as in a plain loop."""

    name = "local"

    def __init__(self) -> None:
        self._queue: list[_Pending] = []

    def submit(self, fn: Callable[..., Any], args: tuple, after: Sequence[Any] = (), cpus: float = 1.0,
               gpus: float = 0.0) -> _Pending:
        pending = _Pending(fn, args)  # ``after`` was submitted earlier, so it runs earlier
        self._queue.append(pending)
        return pending

    def gather(self, handles: Sequence[_Pending]) -> list[Any]:
        last = max(self._queue.index(h) for h in handles) if handles else -1
        for pending in self._queue[:last + 1]:
            if not pending.done:
                pending.value, pending.done = pending.fn(*pending.args), True
        return [h.value for h in handles]


def _call_after(fn: Callable[..., Any], args: tuple, *_after: Any) -> Any:
    """Ray resolves the ``_after`` object refs before this runs: that is the dependency."""
    return fn(*args)


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Ray Core tasks. ``address`` None starts a local Ray instance with ``num_cpus`` CPUs
    (default: all); ``auto`` or ``ray://host:port`` joins a running cluster. Each task asks
    for ``cpus`` CPUs and ``gpus`` GPUs (fractions let several small trials share one GPU) and
    is retried up to ``max_retries`` times when its worker dies."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3) -> None:
        try:
            import ray  # optional: the 'ray' extra, needed only for --executor ray
        except ImportError:
            raise SonoganInputError("--executor ray", "Ray is not installed",
                                    "pip install 'sonogan[ray]' (or use --executor local)") from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
            if address is None:
                kwargs["num_cpus"] = num_cpus
            ray.init(address=address, **kwargs)
        self._remote = ray.remote(max_retries=max_retries, retry_exceptions=False)(_call_after)

    def submit(self, fn: Callable[..., Any], args: tuple, after: Sequence[Any] = (), cpus: float = 1.0,
               gpus: float = 0.0) -> Any:
        return self._remote.options(num_cpus=cpus, num_gpus=gpus, name=getattr(fn, "__name__", "task")).remote(
            fn, args, *after)

    def gather(self, handles: Sequence[Any]) -> list[Any]:
        return list(self._ray.get(list(handles)))

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_executor(name: str, address: str | None = None, num_cpus: int | None = None) -> Executor:
    """``local`` or ``ray`` (with ``address`` / ``num_cpus`` for Ray)."""
    factory = EXECUTORS.get(name)
    return factory(address=address, num_cpus=num_cpus) if name == "ray" else factory()
