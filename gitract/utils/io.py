"""Atomic writes: outputs appear whole or not at all; a file where a folder belongs is
named as such."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The first of ``folder``'s ancestors (or ``folder`` itself) that exists and is not
    a folder, or None (every part is a folder or does not exist yet)."""
    folder = Path(folder)
    for part in [*reversed(folder.parents), folder]:
        if not part.exists():
            return None
        if not part.is_dir():
            return part
    return None


def not_a_folder(path: str | os.PathLike) -> NotADirectoryError:
    """The error for a file found where a folder belongs (``error: PATH: is a file, not
    a folder`` on the command line)."""
    return NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(path))


def make_folder(folder: str | os.PathLike) -> Path:
    """``mkdir -p folder``; a file on the way raises :func:`not_a_folder` naming it."""
    folder = Path(folder)
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise not_a_folder(blocker)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _name_target(exc: OSError, tmp: Path | None, path: Path) -> OSError:
    """``exc`` naming ``path`` where it named the hidden temporary file (or nothing)."""
    if exc.filename is not None and (tmp is None or Path(exc.filename) != tmp):
        return exc
    if exc.filename is None and exc.errno is None:  # a message of its own: kept
        return exc
    return OSError(exc.errno, exc.strerror, str(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched. An
    ``OSError`` names ``path`` (never the temporary file); a file on the way to
    ``path``'s folder raises :func:`not_a_folder` naming that file.
    """
    path = Path(path)
    make_folder(path.parent)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
            dir=path.parent,
        )
    except OSError as exc:
        raise _name_target(exc, None, path) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the final file the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            named = _name_target(exc, tmp_path, path)
            if named is not exc:
                raise named from exc
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
