"""release_memory: a no-op where the C library has no malloc_trim, never an error."""

from __future__ import annotations

import numpy as np

from gitract.utils.memory import release_memory


def test_release_memory_after_freeing_large_arrays_returns_a_bool():
    blocks = [np.ones((2_000_000 + i,), dtype=np.float32) for i in range(8)]
    del blocks
    assert isinstance(release_memory(), bool)
