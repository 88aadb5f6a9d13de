"""Progress bars of long loops, switched on or off for a whole run in one place.

:func:`progress_bars` sets, for the code it wraps, whether long loops (reading and
featurising scans, predicting, the threshold sweep, training epochs) draw tqdm bars;
:func:`progress_bar` wraps an iterable accordingly. Bars are drawn only on a terminal or
in a notebook: a log redirected to a file gets none (``gitract ... > log 2>&1``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["progress_bar", "progress_bars", "progress_counter", "show_progress"]

T = TypeVar("T")

_ENABLED: ContextVar[bool] = ContextVar("gitract_progress", default=False)


@contextlib.contextmanager
def progress_bars(enabled: bool = True) -> Iterator[None]:
    """Within the block, long loops draw bars when ``enabled`` (default: off)."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def show_progress() -> bool:
    """Whether bars are on here and there is somewhere to draw them."""
    if not _ENABLED.get():
        return False
    if _in_notebook():
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (not merely with ipykernel imported)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_bar(iterable: Iterable[T], *, desc: str, total: int | None = None,
                 unit: str = "scan", **kwargs: Any) -> Iterable[T]:
    """``iterable`` with a tqdm bar when :func:`show_progress`, else unchanged."""
    if not show_progress():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, **kwargs)


class _NoBar:
    def update(self, n: int = 1) -> None:
        """Nothing to draw."""


@contextlib.contextmanager
def progress_counter(*, total: int, desc: str, unit: str = "scan") -> Iterator[Any]:
    """A bar advanced by hand (``bar.update(n)``) for loops over chunks of items."""
    if not show_progress():
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit=unit, leave=False) as bar:
        yield bar
