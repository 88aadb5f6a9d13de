"""Generic checks of settings against dataclass type hints, with key paths.

Checks raise :class:`KeyProblem` (a key path and a problem, no file); the config loader
(:mod:`gitract.config`) turns it into a ``ConfigError`` naming the file, so one message
says where, what and why: ``experiments/configs/x.yaml: split.n_folds: expected an int,
got 'five'``. Every settings dataclass (a track kind's, a run section's) checks itself
with these, so its ``from_dict(mapping, path)`` names the bad key by its path.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["KeyProblem", "at_least", "between", "check_dataclass", "check_keys",
           "check_value", "join", "one_of", "problem_of", "show", "suggest"]

#: A rule: the value -> a problem in words, or None when it is fine.
Rule = Callable[[Any], "str | None"]


class KeyProblem(ValueError):
    """A problem at a key path, before the file is known (``gitract.config.ConfigError``
    adds the file); a ``ValueError``, so code that builds settings without a file sees
    the usual error."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}" if key else problem)


def join(path: str, key: str | int) -> str:
    """``join("data", "path") == "data.path"``; ``join("tracks", 2) == "tracks[2]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def suggest(name: str, known: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the closest known name, else the list of known names.

    Examples
    --------
    >>> suggest("n_estimator", ["n_estimators", "max_depth"])
    ' (did you mean n_estimators?)'
    >>> suggest("zzz", ["a", "b"])
    ' (known: a, b)'
    """
    known = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known: {', '.join(known)})" if known else ""


def show(value: Any) -> str:
    """A short repr of a value for a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_keys(values: Mapping, known: Iterable[str], path: str, *,
               what: str = "key") -> None:
    """Raise for the first key of ``values`` not in ``known``, with a suggestion."""
    known = list(known)
    for key in values:
        if key not in known:
            raise KeyProblem(join(path, str(key)), f"unknown {what}{suggest(str(key), known)}")


# ------------------------------------------------------------------------- types
def _is_none(hint: Any) -> bool:
    return hint is type(None) or hint is None


def describe(hint: Any) -> str:
    """Words for a type hint (``int | None`` -> ``an int or null``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if _is_none(hint):
        return "null"
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an int"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            inner = describe(args[0]).removeprefix("an ").removeprefix("a ")
            return f"a list of {inner}s"
        return f"a list of {len(args)} values"
    return "a mapping"


def check_value(value: Any, hint: Any, path: str) -> Any:
    """``value`` checked against ``hint``; returns it normalised (lists of a tuple hint
    as tuples; a numeric string of a float field as a float).

    PyYAML follows YAML 1.1, which reads ``1e-3`` as a string: such strings are accepted
    where a number is expected, since that is what the user wrote.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and any(_is_none(a) for a in args):
            return None
        for arg in args:
            if _is_none(arg):
                continue
            try:
                return check_value(value, arg, path)
            except KeyProblem:
                continue
        raise KeyProblem(path, f"expected {describe(hint)}, got {show(value)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(check_value(v, args[0], join(path, i)) for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(check_value(v, a, join(path, i))
                             for i, (v, a) in enumerate(zip(value, args, strict=True)))
    elif hint in (dict, Mapping) or origin in (dict, Mapping):
        if isinstance(value, Mapping):
            return value
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, Mapping):
            return value
    else:  # a hint these checks do not know: leave the value to the constructor
        return value
    raise KeyProblem(path, f"expected {describe(hint)}, got {show(value)}")


def check_dataclass(cls: type, values: Any, path: str, *,
                    rules: Mapping[str, Rule] | None = None,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check a mapping meant for dataclass ``cls``: known keys, types, then ``rules``.

    ``extra`` adds accepted keys with their hints (e.g. a track's tuning keys). Returns
    the normalised values of the keys given (defaults are the dataclass's).
    """
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise KeyProblem(path, f"expected a mapping, got {show(values)}")
    resolved = typing.get_type_hints(cls)
    hints = {f.name: resolved[f.name] for f in dataclasses.fields(cls)}
    hints.update(extra or {})
    check_keys(values, hints, path)
    out = {}
    for key, value in values.items():
        where = join(path, key)
        out[key] = check_value(value, hints[key], where)
        rule = (rules or {}).get(key)
        problem = rule(out[key]) if rule is not None and out[key] is not None else None
        if problem:
            raise KeyProblem(where, problem)
    return out


# ------------------------------------------------------------------------- rules
def at_least(low: float) -> Rule:
    """A number >= ``low`` (each element of a list)."""
    def rule(value):
        values = value if isinstance(value, tuple) else (value,)
        bad = [v for v in values if not v >= low]
        return f"must be >= {low:g}, got {show(value)}" if bad else None
    return rule


def between(low: float, high: float, *, open_low: bool = False,
            open_high: bool = False) -> Rule:
    """A number in an interval (each element of a list)."""
    def rule(value):
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if (v <= low if open_low else v < low) or (v >= high if open_high else v > high):
                left, right = "(" if open_low else "[", ")" if open_high else "]"
                return f"must be in {left}{low:g}, {high:g}{right}, got {show(value)}"
        return None
    return rule


def one_of(choices: Iterable[str]) -> Rule:
    """One of ``choices`` (a suggestion for a near miss)."""
    choices = tuple(choices)

    def rule(value):
        if value in choices:
            return None
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"must be one of {', '.join(choices)}, got {show(value)}{hint}"
    return rule


def problem_of(exc: Exception, fields: Iterable[str], path: str) -> KeyProblem:
    """A constructor's ``ValueError`` ("block_size must be ...") as a problem at the key
    it names when it starts with a field name, else at ``path``."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    head, _, rest = message.partition(" ")
    name = head.rsplit(".", 1)[-1].rstrip(":")
    if name in set(fields) and rest:
        return KeyProblem(join(path, name), rest)
    return KeyProblem(path, message)
