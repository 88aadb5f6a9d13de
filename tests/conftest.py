"""Shared fixtures: seeded generator, small synthetic slices, real-data locations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gitract.paths import shared_data_dir


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def synthetic_slice() -> tuple[np.ndarray, np.ndarray]:
    """A 64x64 float32 image in [0, 1] with a bright ellipse organ on noise, and its mask."""
    from skimage.draw import ellipse

    gen = np.random.default_rng(1)
    image = gen.normal(0.2, 0.05, size=(64, 64)).astype(np.float32)
    mask = np.zeros((64, 64), dtype=bool)
    rr, cc = ellipse(30, 34, 12, 18, shape=mask.shape)
    mask[rr, cc] = True
    image[mask] += 0.5
    return np.clip(image, 0, 1), mask


def _shared(name: str) -> Path:
    path = shared_data_dir() / name
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set GITRACT_SHARED_DATA to its parent)")
    return path


@pytest.fixture
def uwmgi_dir() -> Path:
    """Real UW-Madison image/colour-mask pairs (skips when absent)."""
    return _shared("uwmgi_derived_512")


@pytest.fixture
def isbi_dir() -> Path:
    return _shared("isbi2012_em")


@pytest.fixture
def totalseg_dir() -> Path:
    return _shared("totalseg_examples")


@pytest.fixture
def colin_dir() -> Path:
    return _shared("colin27_aal")


@pytest.fixture
def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")
