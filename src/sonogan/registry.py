"""A tiny generic registry + factory, as in timm's ``create_model``.

Example:
    >>> GENERATORS = Registry("generator")
    >>> @GENERATORS.register("toy")
    ... def make_toy(size: int = 4):
    ...     return [0] * size
    >>> GENERATORS.create("toy", size=2)
    [0, 0]
    >>> GENERATORS.names()
    ['toy']
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from sonogan.errors import SonoganInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; ``create(name, **kw)`` builds one."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._factories[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories:
            raise SonoganInputError(
                f"{self.kind} '{name}'", "unknown name", f"use one of: {', '.join(self.names())}"
            )
        return self._factories[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories
