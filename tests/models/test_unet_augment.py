"""U-Net batch augmentation: labels move with images, crops are exact, seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.models.unet import augment_batch  # noqa: E402

NO_INTENSITY = {"gamma": 0.0, "brightness": 0.0, "contrast": 0.0, "noise": 0.0}
NO_GEOMETRY = {"rotate": 0.0, "scale": 0.0, "shift": 0.0, "elastic": 0.0}


def _squares(n: int = 4, size: int = 64):
    """Bright squares (0.8 on 0.2) at different places, their masks in channel 0, and an
    empty channel 1."""
    x = torch.full((n, 3, size, size), 0.2)
    y = torch.zeros(n, 2, size, size)
    for i in range(n):
        r, c = 12 + 5 * i, 20 + 3 * i
        x[i, :, r:r + 20, c:c + 16] = 0.8
        y[i, 0, r:r + 20, c:c + 16] = 1.0
    return x, y


@pytest.mark.parametrize("elastic", [0.0, 0.05])
def test_masks_cover_the_transformed_square(elastic):
    x, y = _squares()
    xa, ya = augment_batch(x, y, torch.Generator().manual_seed(0), rotate=30.0, scale=0.2,
                           shift=0.1, elastic=elastic, **NO_INTENSITY)
    bright = xa[:, 1] > 0.5
    # Same grid, same interpolation: the mask is the transformed square, pixel for pixel
    # (a pixel or two may sit exactly on the 0.5 boundary).
    assert (bright != ya[:, 0].bool()).sum() <= 2
    assert ya[:, 1].sum() == 0
    # The square really moved (and not by the same amount in every sample).
    assert (ya[:, 0] != y[:, 0]).any(dim=(1, 2)).all()
    # Area is kept up to the zoom: +-20 % side -> at most x1.5625 or x0.64.
    ratio = ya[:, 0].sum((1, 2)) / y[:, 0].sum((1, 2))
    assert ((ratio > 0.6) & (ratio < 1.6)).all()


def test_intensity_changes_leave_masks_alone():
    x, y = _squares()
    xa, ya = augment_batch(x, y, torch.Generator().manual_seed(1), gamma=0.5, brightness=0.2,
                           contrast=0.2, noise=0.1, **NO_GEOMETRY)
    assert torch.equal(ya, y)
    assert not torch.allclose(xa, x, atol=1e-3)
    assert xa.min() >= 0.0 and xa.max() <= 1.0


def test_seed_reproduces_and_a_new_seed_differs():
    x, y = _squares()
    opts = {"elastic": 0.05, "noise": 0.05, "out_size": (32, 32), "crop_foreground": 0.5}
    a = augment_batch(x, y, torch.Generator().manual_seed(3), **opts)
    b = augment_batch(x, y, torch.Generator().manual_seed(3), **opts)
    c = augment_batch(x, y, torch.Generator().manual_seed(4), **opts)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_half_turn_is_both_flips():
    x, y = _squares()
    xa, ya = augment_batch(x, y, torch.Generator().manual_seed(0), hflip=1.0, vflip=1.0,
                           **NO_GEOMETRY, **NO_INTENSITY)
    torch.testing.assert_close(xa, x.flip(-1).flip(-2), atol=1e-5, rtol=0)
    assert torch.equal(ya, y.flip(-1).flip(-2))


def test_crops_are_exact_windows_inside_each_sample():
    """Without deformation a crop is an integer-offset window of the (unpadded) sample,
    the same window for image and masks."""
    gen = np.random.default_rng(0)
    x = torch.zeros(3, 2, 40, 48)
    sizes = torch.tensor([[40, 48], [33, 41], [24, 20]])
    for i, (h, w) in enumerate(sizes.tolist()):
        x[i, :, :h, :w] = torch.from_numpy(gen.uniform(0.3, 1.0, (2, h, w)).astype(np.float32))
    y = (x[:, :1] > 0.65).float()
    xa, ya = augment_batch(x, y, torch.Generator().manual_seed(5), sizes=sizes,
                           out_size=(24, 16), **NO_GEOMETRY, **NO_INTENSITY)
    assert xa.shape == (3, 2, 24, 16) and ya.shape == (3, 1, 24, 16)
    for i, (h, w) in enumerate(sizes.tolist()):
        hits = [(r, c) for r in range(h - 24 + 1) for c in range(w - 16 + 1)
                if torch.allclose(x[i, :, r:r + 24, c:c + 16], xa[i], atol=1e-5)]
        assert len(hits) == 1, f"sample {i}: {len(hits)} matching windows"
        r, c = hits[0]
        assert torch.equal(ya[i], y[i, :, r:r + 24, c:c + 16])
    assert xa.min() >= 0.3  # never the zero padding beyond a sample's own size


def test_foreground_crops_hold_foreground():
    x = torch.zeros(6, 1, 96, 96)
    y = torch.zeros(6, 1, 96, 96)
    y[:, 0, 80:84, 5:9] = 1.0  # a small organ in a corner
    x[y.bool()] = 1.0
    _, ya = augment_batch(x, y, torch.Generator().manual_seed(0), out_size=(32, 32),
                          crop_foreground=1.0, **NO_GEOMETRY, **NO_INTENSITY)
    assert (ya.sum((1, 2, 3)) == 16).all()
    _, yb = augment_batch(x, y, torch.Generator().manual_seed(0), out_size=(32, 32),
                          crop_foreground=0.0, **NO_GEOMETRY, **NO_INTENSITY)
    assert (yb.sum((1, 2, 3)) < 16).any()
