"""Reading a config file: YAML with no duplicated key, a mapping at the top level, and
the keys every config file must give (``name``, a non-empty ``tracks``).

PyYAML keeps the last of two equal keys without a word; a config whose ``seed`` is set
twice would run with whichever came last, so :class:`UniqueKeyLoader` refuses it and
names both lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gitract.config._schema import ConfigError, show

__all__ = ["UniqueKeyLoader", "check_file_keys", "read_config_file"]


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping that gives one key twice (``key``, the 1-based ``lines`` of both)."""

    def __init__(self, key: Any, lines: tuple[int, int], mark: yaml.Mark) -> None:
        self.key, self.lines = key, lines
        super().__init__(problem=f"duplicate key {key!r} (lines {lines[0]} and {lines[1]})",
                         problem_mark=mark)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` for a key given twice in
    one mapping (merge keys ``<<`` may still be overridden, as YAML intends)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader names it below
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise DuplicateKeyError(key, (first, line), key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The parsed YAML of a config file (a non-empty mapping); a problem names the file
    (and the line and column of invalid YAML, the key and both lines of a duplicated key).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(str(path), "", "is a folder, not a config file")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read the config ({exc})") from None
    try:
        raw = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except DuplicateKeyError as exc:
        raise ConfigError(str(path), str(exc.key), f"duplicate key on lines {exc.lines[0]} "
                                                   f"and {exc.lines[1]}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(str(path), where, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"invalid YAML: {exc}") from None
    if raw is None:
        raise ConfigError(str(path), "", "the config is empty (expected a mapping of "
                                         "settings: name, data, split, tracks)")
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        article = "an" if kind[0] in "aeiou" else "a"
        raise ConfigError(str(path), "", "expected a mapping of settings at the top level, "
                                         f"got {article} {kind} ({show(raw)})")
    return raw


def check_file_keys(raw: Mapping[str, Any], source: str) -> None:
    """The keys a config file must give, which a config built in code may leave to their
    defaults: ``name`` (the run's default folder ``reports/<name>``: a default name would
    write over another run) and at least one track (a run of nothing is a mistake).

    Raises
    ------
    ConfigError
        Naming ``source`` and the key.
    """
    if "name" not in raw:
        raise ConfigError(source, "name", "missing: a config names its run (its default "
                                          "folder is reports/<name>)")
    example = "(- {name: ..., kind: ..., params: ...})"
    if "tracks" not in raw:
        raise ConfigError(source, "tracks", f"missing: a config needs at least one track {example}")
    tracks = raw["tracks"]
    if tracks is None or (isinstance(tracks, (list, tuple)) and not tracks):
        empty = "is null (an empty section?)" if tracks is None else "is an empty list"
        raise ConfigError(source, "tracks", f"{empty}: a config needs at least one track "
                                            f"{example}")
