"""The output-folder rule every command follows: write only where gitract wrote before.

A command writes into a folder that is new, empty, or one it wrote itself for the same kind
of output; a marker file (:data:`MARKER`) records which command wrote the folder and for
what. Anything else ends in one line naming the folder and what is in it, unless the user
passes ``--force``, and then a warning says what will be replaced. Nothing here deletes a
file: commands replace only the files they write.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from gitract.utils.io import file_in_the_way, write_text_atomic

log = logging.getLogger("gitract.outputs")

__all__ = ["MARKER", "OutputFolder", "OutputFolderError", "check_output_file",
           "check_output_folder",
           "describe_entries", "read_marker"]

#: The marker a command leaves in a folder it created or adopted.
MARKER = ".gitract.json"


class OutputFolderError(ValueError):
    """A command was asked to write where it must not (the message names the folder)."""


def describe_entries(names: Iterable[str], *, limit: int = 5) -> str:
    """``'a, b/, c and 4 more'``: a short list of folder entries for a message."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _entries(folder: Path) -> list[str]:
    return [p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if p.name != MARKER]


def read_marker(folder: Path) -> dict | None:
    """The marker of ``folder`` (None when there is none or it cannot be read)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


@dataclass
class OutputFolder:
    """A checked output folder: :meth:`create` makes it and leaves the marker.

    ``status`` is ``"new"`` (does not exist), ``"empty"``, ``"ours"`` (written by the same
    kind of command before) or ``"forced"`` (``--force`` on a folder that is none of
    these); ``replaced`` lists the entries a forced write may replace.
    """

    path: Path
    kind: str
    command: str
    status: str
    replaced: list[str] = field(default_factory=list)

    def create(self, **details) -> Path:
        """Make the folder (and its parents) and write the marker; returns the path."""
        self.path.mkdir(parents=True, exist_ok=True)
        marker = read_marker(self.path) or {}
        if marker.get("kind") != self.kind:
            marker = {"kind": self.kind, "command": self.command,
                      "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        marker.update({"last_command": self.command, **details})
        write_text_atomic(self.path / MARKER, json.dumps(marker, indent=2, default=str) + "\n")
        return self.path


def check_output_folder(
    path: str | Path,
    *,
    kind: str,
    command: str,
    force: bool = False,
    written_before: Callable[[Path], bool] | None = None,
    writes: Iterable[str] = (),
) -> OutputFolder:
    """Check that ``command`` may write its ``kind`` of output into ``path``; writes nothing.

    Parameters
    ----------
    path : path
        The output folder.
    kind : str
        What the folder holds (``"run"``, ``"coco"``, ...); a folder whose marker names
        another kind is not this command's.
    command : str
        The command, for messages and the marker (``"gitract compare"``).
    force : bool
        Write into a folder that is not new, empty or ours, with a warning.
    written_before : callable, optional
        Recognises a folder this kind of command wrote before markers existed.
    writes : iterable of str
        The entries the command writes (for the ``--force`` message).

    Raises
    ------
    OutputFolderError
        When ``path`` or a component of it is a file, or the folder holds files gitract
        did not write for this kind of output and ``force`` is False.
    """
    out = Path(path)
    blocker = file_in_the_way(out)
    if blocker is not None:
        what = "is a file" if blocker == out else f"{blocker} is a file"
        raise OutputFolderError(f"{out}: {what}, not a folder; choose another output folder")
    if not out.exists():
        return OutputFolder(out, kind, command, "new")
    entries = _entries(out)
    if not entries:
        return OutputFolder(out, kind, command, "empty")
    marker = read_marker(out)
    if (marker is not None and marker.get("kind") == kind) or (
            marker is None and written_before is not None and written_before(out)):
        return OutputFolder(out, kind, command, "ours")
    owner = (f"written by gitract for {marker.get('kind')!r} output ({marker.get('command')})"
             if marker is not None else "not written by gitract")
    replaced = sorted(set(writes) & {e.rstrip("/") for e in entries})
    if not force:
        raise OutputFolderError(
            f"{out}: holds {len(entries)} {'entry' if len(entries) == 1 else 'entries'} {owner} ({describe_entries(entries)}); "
            f"{command} writes only into a new or empty folder or one it wrote itself: "
            "choose another folder, or pass --force to write into this one")
    log.warning("%s: --force: writing %s output into a folder %s (%s)%s", out, kind, owner,
                describe_entries(entries),
                f"; replaces {describe_entries(replaced)}" if replaced else
                "; its files of other names are kept")
    return OutputFolder(out, kind, command, "forced", replaced)


def check_output_file(path: str | Path, *, header: str, command: str,
                      force: bool = False) -> Path:
    """Check that ``command`` may write the file ``path``: new, or a file of the same kind
    it wrote before (its first line is ``header``); writes nothing.

    Raises
    ------
    OutputFolderError
        When ``path`` is a folder, a component of it is a file, or it is a file of
        something else and ``force`` is False.
    """
    out = Path(path)
    blocker = file_in_the_way(out.parent)
    if blocker is not None:
        raise OutputFolderError(f"{out}: {blocker} is a file, not a folder; choose another "
                                "output path")
    if out.is_dir():
        raise OutputFolderError(f"{out}: is a folder; {command} writes a file there: name "
                                f"the file, e.g. {out / 'submission.csv'}")
    if not out.exists():
        return out
    try:
        with out.open("rb") as handle:
            first = handle.readline(len(header) + 2).decode("utf-8", "replace").strip()
    except OSError:
        first = ""
    if first == header:
        return out
    if not force:
        raise OutputFolderError(
            f"{out}: exists and is not a file {command} wrote (its first line is not "
            f"{header!r}); choose another path, or pass --force to replace it")
    log.warning("%s: --force: replacing a file %s did not write", out, command)
    return out
