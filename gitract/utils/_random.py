"""Seeding helpers: library code never touches global random state."""

from __future__ import annotations

import random

import numpy as np


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``random_state`` into a local :class:`numpy.random.Generator`.

    Examples
    --------
    >>> bool(check_random_state(0).integers(10) == check_random_state(0).integers(10))
    True
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be None, an int or a Generator, got {random_state!r}")


def derive_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent integer seeds derived from one run seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def seed_everything(seed: int) -> None:
    """Seed python, numpy's legacy global state and torch (entry points only)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - entry point seeding of legacy users
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(seed)
