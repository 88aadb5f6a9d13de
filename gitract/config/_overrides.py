"""``--set key=value`` overrides of a config, applied to the parsed YAML before checks.

Keys are dotted paths (``data.path``, ``split.n_folds``); a track is addressed by its
name (``tracks.unet.params.max_steps``) or its position (``tracks.0.params.step``).
Values are parsed as YAML (``100`` an int, ``null`` None, ``[0, 64]`` a list, ``a/b`` a
string). Missing mappings on the way are created; the checks then name unknown keys.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from gitract.config._schema import ConfigError, join, show, suggest

__all__ = ["apply_sets", "parse_sets"]


def parse_sets(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``["a.b=1", ...]`` -> ``[("a.b", 1), ...]`` (values parsed as YAML).

    Examples
    --------
    >>> parse_sets(["seed=3", "data.path=/data/x", "min_sizes=[0, 64]"])
    [('seed', 3), ('data.path', '/data/x'), ('min_sizes', [0, 64])]
    """
    out = []
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError("--set", str(item), "expected KEY=VALUE with a dotted key, "
                                                  "e.g. --set split.n_folds=3")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError("--set", key, f"invalid YAML value {text!r}: {problem}") from None
        out.append((key, value))
    return out


def _track_index(tracks: Any, ident: str, key: str) -> int:
    if not isinstance(tracks, list) or not tracks:
        raise ConfigError("--set", key, "the config has no tracks to set")
    names = [t.get("name") if isinstance(t, Mapping) else None for t in tracks]
    if ident in names:
        return names.index(ident)
    if ident.isdigit() and int(ident) < len(tracks):
        return int(ident)
    known = [str(n) for n in names if n is not None]
    raise ConfigError("--set", key, f"no track named {ident!r}{suggest(ident, known)}")


def apply_sets(raw: Mapping[str, Any], sets: Sequence[tuple[str, Any]]
               ) -> tuple[dict[str, Any], dict[str, str]]:
    """``raw`` with every override applied (a copy), and ``{canonical key path: key as
    given}`` (``tracks[2].params.max_steps`` -> ``tracks.unet.params.max_steps``) so that
    a problem found later can be blamed on ``--set``."""
    out = copy.deepcopy(dict(raw))
    paths: dict[str, str] = {}
    for key, value in sets:
        parts = key.split(".")
        node: Any = out
        canonical = ""
        i = 0
        while i < len(parts):
            if not isinstance(node, dict):
                raise ConfigError("--set", key, f"{canonical} is {show(node)}, not a mapping "
                                                "of settings")
            part = parts[i]
            last = i == len(parts) - 1
            if node is out and part == "tracks" and not last:
                index = _track_index(out.get("tracks"), parts[i + 1], key)
                canonical = join(join(canonical, "tracks"), index)
                if i + 1 == len(parts) - 1:  # the whole track replaced
                    out["tracks"][index] = value
                    break
                node = out["tracks"][index]
                i += 2
                continue
            canonical = join(canonical, part)
            if last:
                node[part] = value
                break
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError("--set", key, f"{canonical} is {show(child)}, not a mapping "
                                                "of settings")
            node = child
            i += 1
        paths[canonical] = key
    return out, paths


def blame(error: ConfigError, paths: Mapping[str, str]) -> ConfigError:
    """``error`` as a ``--set`` error when its key lies under a key that ``--set`` gave."""
    for canonical, given in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        if error.key == canonical or error.key.startswith((canonical + ".", canonical + "[")):
            return ConfigError("--set", given + error.key[len(canonical):], error.problem)
    return error
