"""Small shared helpers (random state, atomic writes).

The seeding helpers live in the private ``_random`` module and are exported here; the other
submodules (``io``, ``memory``, ``parallel``, ``progress``) are imported by name.
"""

from gitract.utils._random import check_random_state, derive_seeds, seed_everything

__all__ = ["check_random_state", "derive_seeds", "seed_everything"]
