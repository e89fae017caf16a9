"""Numbers that cannot be measured on the data at hand: one convention for every optional metric.

A rare class with a handful of images is this toolkit's use case, so a metric that needs more
data than it got (NIQE without sharp reference patches, FID/KID or diversity with one image,
PRDC with fewer than 2 images, a t-SNE with fewer points than its perplexity allows) must not
stop a run. Such a function raises :class:`NotComputable` with a reason a reader understands;
a caller that can go on without the number wraps the call in :func:`attempt`, which turns only
that exception into a :class:`Skipped` value. Any other error still propagates: a bug is not a
small sample, and nothing is swallowed by a bare ``except``.

In JSON a skipped number is ``null`` and its reason is listed under the record's
``"skipped"`` key, ``{dotted.path: reason}`` (:func:`skip_reasons`), so a report can print
"skipped: <reason>" beside every missing value.

Example:
    >>> def fid(n: int) -> float:
    ...     if n < 2:
    ...         raise NotComputable(f"FID needs at least 2 images, got {n}")
    ...     return 1.5
    >>> attempt(fid, 1)
    Skipped(reason='FID needs at least 2 images, got 1')
    >>> attempt(fid, 3)
    1.5
    >>> value_or_none(attempt(fid, 1)), skip_reasons({"quality.niqe": attempt(fid, 1), "fid": 1.5})
    (None, {'quality.niqe': 'FID needs at least 2 images, got 1'})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")


class NotComputable(ValueError):
    """This measurement cannot be made on this input (too few images, patches or cases).

    A ValueError, so callers that already caught ValueError for bad input keep working."""


@dataclass(frozen=True)
class Skipped:
    """A measurement that was not made, and why."""

    reason: str


def attempt(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | Skipped:
    """``fn(*args, **kwargs)``, or :class:`Skipped` when it raises :class:`NotComputable`."""
    try:
        return fn(*args, **kwargs)
    except NotComputable as exc:
        return Skipped(str(exc))


def value_or_none(value: Any) -> Any:
    """``None`` for a :class:`Skipped` value (JSON ``null``), else the value itself."""
    return None if isinstance(value, Skipped) else value


def skip_reasons(values: Mapping[str, Any]) -> dict[str, str]:
    """``{name: reason}`` of the skipped entries of ``values``."""
    return {name: v.reason for name, v in values.items() if isinstance(v, Skipped)}
