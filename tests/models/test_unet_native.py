"""U-Net at native resolution: crops for training, padded whole slices for prediction."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.data.record import SliceStack  # noqa: E402
from gitract.models.train_torch import evaluate_net  # noqa: E402
from gitract.models.unet import UNetConfig, UNetSegmenter  # noqa: E402
from gitract.models.unet._slice_files import PadCollate  # noqa: E402

NATIVE = UNetConfig(image_size=None, crop_size=16, base_channels=4, depth=2, batch_size=4,
                    max_epochs=None, max_steps=3, device="cpu", num_threads=1,
                    progress=False)


def _stack(case: str, shape, *, n: int = 3, seed: int = 0) -> SliceStack:
    gen = np.random.default_rng(seed)
    h, w = shape
    image = gen.normal(100, 5, (n, h, w)).astype(np.float32)
    masks = np.zeros((n, h, w, 2), bool)
    masks[:, h // 4: h // 2, w // 3: 2 * w // 3, 0] = True
    masks[:, 2 * h // 3:, : w // 4, 1] = True
    image[masks[..., 0]] += 100
    image[masks[..., 1]] += 50
    return SliceStack(image, masks, ("a", "b"), (1.5, 1.5),
                      tuple(f"{case}_day0_slice_{i:04d}" for i in range(n)), case, "day0")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def native() -> UNetSegmenter:
    return UNetSegmenter(NATIVE).fit([_stack("c1", (40, 48)), _stack("c2", (37, 45), seed=1)],
                                     [_stack("c3", (33, 30), seed=2)])


@pytest.mark.parametrize("shape", [(37, 45), (41, 50), (64, 64)])
def test_native_predict_returns_the_input_shape(native, shape):
    stack = _stack("x", shape, seed=3)
    proba = native.predict_proba_stack(stack)
    assert proba.shape == (3, *shape, 2) and proba.dtype == np.float32
    assert 0.0 <= proba.min() and proba.max() <= 1.0
    assert native.history_.steps == 3


class _CentreChannel(torch.nn.Module):
    def forward(self, x):
        return 40.0 * (x[:, 1:2] - 0.5).repeat(1, 2, 1, 1)


def test_native_prediction_is_pixel_exact():
    """No resizing either way: a net that thresholds the centre channel gives back the
    bright pixels exactly, padding cropped off."""
    image = np.zeros((2, 37, 45), np.float32)
    image[:, 5:19, 7:30] = 1000.0
    image[:, 36, 44] = 1000.0  # a bright pixel in the last row and column
    stack = SliceStack(image, None, ("a", "b"), (1, 1), ("x0", "x1"), "cx")
    seg = UNetSegmenter(NATIVE)
    seg.net_, seg.device_, seg.classes_ = _CentreChannel(), torch.device("cpu"), ("a", "b")
    pred = seg.predict_proba_stack(stack) > 0.5
    assert np.array_equal(pred, (image > 500)[..., None].repeat(2, -1))


def test_validation_dice_leaves_padding_out():
    """A net that says 'organ' everywhere: padding counted as prediction would lower the
    Dice; with the sizes it is the Dice of the real pixels only."""

    class _All(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 1, *x.shape[2:]), 10.0)

    items = [(torch.zeros(1, 6, 8), torch.ones(1, 6, 8)), (torch.zeros(1, 3, 4),
             torch.ones(1, 3, 4))]
    batch = PadCollate(4)(items)
    assert batch[0].shape == (2, 1, 8, 8)
    ev = evaluate_net(_All(), [batch])
    assert ev["dice"] == pytest.approx(1.0)
    ev_padded = evaluate_net(_All(), [batch[:2]])
    assert ev_padded["dice"] < 0.9


def test_fixed_spacing_grid_predicts_on_the_input_shape():
    """``spacing_mm``: stacks of different spacings are resampled to one pixel size for
    the net and the maps come back on each stack's own grid."""
    from dataclasses import replace

    cfg = replace(NATIVE, spacing_mm=3.0, crop_size=8)
    fine = _stack("c1", (40, 48))  # 1.5 mm: prepared at 20 x 24
    seg = UNetSegmenter(cfg).fit([fine], [_stack("c2", (37, 45), seed=1)])
    coarse = SliceStack(fine.image[:, ::2, ::2], None, ("a", "b"), (3.0, 3.0), fine.ids, "cx")
    assert seg._inputs(fine).shape[-2:] == (20, 24)
    assert seg._inputs(coarse).shape[-2:] == (20, 24)
    assert seg.predict_proba_stack(fine).shape == (3, 40, 48, 2)
    assert seg.predict_proba_stack(coarse).shape == (3, 20, 24, 2)


def test_native_config_validation():
    with pytest.raises(ValueError, match="spacing_mm"):
        UNetConfig(spacing_mm=3.0)  # image_size 256 is set
    with pytest.raises(ValueError, match="spacing_mm"):
        UNetConfig(image_size=None, spacing_mm=0.0)
    assert UNetConfig(image_size=None, crop_size=None, depth=3).image_size is None
    with pytest.raises(ValueError, match="crop_size"):
        UNetConfig(crop_size=100, depth=3)
    with pytest.raises(ValueError, match="crop_foreground"):
        UNetConfig(crop_foreground=1.5)
    with pytest.raises(ValueError, match="scale"):
        UNetConfig(scale=1.0)
    cfg = UNetConfig.from_dict({**NATIVE.to_dict()})
    assert cfg == NATIVE
