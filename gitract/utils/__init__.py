"""Small shared helpers (random state, atomic writes)."""
