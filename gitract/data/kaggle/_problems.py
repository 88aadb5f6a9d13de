"""Problems found while reading: raise at the first one or collect them all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gitract.data.record import DataError


class Problems:
    """Raise at the first problem (``strict``) or collect every one (validation)."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.items: list[str] = []

    def __call__(self, message: str) -> None:
        if self.strict:
            raise DataError(message)
        self.items.append(" ".join(str(message).split()))

    @contextlib.contextmanager
    def catch(self) -> Iterator[None]:
        try:
            yield
        except DataError as exc:
            if self.strict:
                raise
            self(str(exc))
