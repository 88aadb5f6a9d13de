"""Progress bars: off unless a run turns them on, and drawn only where someone sees them."""

from __future__ import annotations

import io
import sys

from gitract.utils.parallel import map_scans
from gitract.utils.progress import progress_bar, progress_bars, show_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_are_drawn_only_when_on_and_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert not show_progress()  # off unless a run turns them on
    with progress_bars(True):
        assert show_progress()
        assert map_scans(abs, [-1, -2, 3], desc="numbers") == [1, 2, 3]
        with progress_bars(False):
            assert not show_progress()
    assert "numbers:" in sys.stderr.getvalue() and "0/3" in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: no bars
    with progress_bars(True):
        items = [1, 2]
        assert progress_bar(items, desc="x") is items


def test_an_imported_kernel_is_not_a_notebook(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress_bars(True):
        assert not show_progress()
