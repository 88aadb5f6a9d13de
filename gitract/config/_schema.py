"""The config's error (:class:`ConfigError`) and the generic checks it reports.

The checks themselves (:class:`KeyProblem`, :func:`check_dataclass`, rules) live in
:mod:`gitract.utils.schema`, where every settings dataclass (a track kind's too) uses them.
"""

from __future__ import annotations

from gitract.data.record import DataError
from gitract.utils.schema import (
    KeyProblem,
    at_least,
    between,
    check_dataclass,
    check_keys,
    check_value,
    join,
    one_of,
    problem_of,
    show,
    suggest,
)

__all__ = ["ConfigError", "KeyProblem", "at_least", "between", "check_dataclass",
           "check_keys", "check_value", "join", "one_of", "problem_of", "show", "suggest"]


class ConfigError(DataError):
    """A config that cannot be used: the file (or ``--set``), the key path and the problem.

    ``str(error)`` is ``"<source>: <key>: <problem>"`` (the key is left out when empty).
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = str(source), str(key), str(problem)
        super().__init__(": ".join(p for p in (self.source, self.key, self.problem) if p))

    def __reduce__(self):
        return type(self), (self.source, self.key, self.problem)
