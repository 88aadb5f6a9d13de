"""2.5D U-Net track: net shapes, 2.5D stacking, training loop, grid round trip, I/O."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.data.record import SliceStack  # noqa: E402
from gitract.models._unet_data import (  # noqa: E402
    neighbour_indices,
    prepare_images,
    prepare_masks,
    resize_proba_back,
    stack_25d,
)
from gitract.models.nets import UNet  # noqa: E402
from gitract.models.train_torch import (  # noqa: E402
    TrainConfig,
    bce_dice_loss,
    fit_net,
    load_checkpoint,
    make_loader,
    save_checkpoint,
)
from gitract.models.unet import (  # noqa: E402
    UNetConfig,
    UNetSegmenter,
    augment_batch,
)

#: The image sizes of the data, as (rows, cols): Kaggle 234, 266, 276, 360x310 (width
#: 360, height 310) and the derived 512x512 set.
SIZES = [(234, 234), (266, 266), (276, 276), (310, 360), (512, 512)]

TINY = UNetConfig(image_size=32, base_channels=4, depth=2, batch_size=4, max_epochs=2,
                  device="cpu", num_threads=1, progress=False, lr=1e-2)


def _stack(case: str, *, n: int = 4, shape=(40, 48), seed: int = 0, numbers=None) -> SliceStack:
    """Two overlapping-free 'organs' (bright ellipse, dimmer disc) on noise."""
    from skimage.draw import disk, ellipse

    gen = np.random.default_rng(seed)
    h, w = shape
    image = gen.normal(100, 10, (n, h, w)).astype(np.float32)
    masks = np.zeros((n, h, w, 2), bool)
    for s in range(n):
        rr, cc = ellipse(h // 2 + gen.integers(-3, 4), w // 3, h // 5, w // 6, shape=shape)
        masks[s, rr, cc, 0] = True
        rr, cc = disk((h // 2, 2 * w // 3 + gen.integers(-3, 4)), min(h, w) // 7, shape=shape)
        masks[s, rr, cc, 1] = True
    image[masks[..., 0]] += 80
    image[masks[..., 1]] += 40
    ids = tuple(f"{case}_day0_slice_{i:04d}" for i in range(n))
    return SliceStack(image, masks, ("a", "b"), (1.5, 1.5), ids, case, "day0",
                      slice_numbers=numbers or ())


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a busy 2-core machine two OpenMP threads spin and crawl."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def fitted() -> UNetSegmenter:
    return UNetSegmenter(TINY, max_epochs=3).fit([_stack("c1", seed=1)], [_stack("c2", seed=2)])


# ----------------------------------------------------------------------------- net
@pytest.mark.parametrize("up_mode", ["transpose", "bilinear"])
@pytest.mark.parametrize("depth", [1, 3])
def test_unet_shapes(up_mode, depth):
    net = UNet(3, 2, base_channels=4, depth=depth, up_mode=up_mode)
    assert net(torch.zeros(2, 3, 64, 32)).shape == (2, 2, 64, 32)


def test_unet_rejects_bad_inputs():
    net = UNet(3, 3, base_channels=4, depth=3)
    with pytest.raises(ValueError, match="multiples of 2"):
        net(torch.zeros(1, 3, 36, 32))
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(1, 2, 32, 32))
    with pytest.raises(ValueError, match="depth"):
        UNet(3, 3, depth=0)


# ----------------------------------------------------------------------------- 2.5D
def test_stack_25d_complete_stack_and_edges():
    vol = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 3, 4), np.float32)
    out = stack_25d(vol, range(10, 15), offsets=(-2, 0, 2))
    assert out.shape == (5, 3, 4, 3) and out.dtype == np.float32
    # Interior: exact neighbours; edges: the edge slice repeated.
    assert out[:, 0, 0].tolist() == [[0, 0, 2], [0, 1, 3], [0, 2, 4], [1, 3, 4], [2, 4, 4]]
    assert np.shares_memory(out, vol) is False


def test_stack_25d_single_slice_and_sparse():
    vol = np.random.default_rng(0).random((1, 5, 5)).astype(np.float32)
    out = stack_25d(vol, [7])
    assert all(np.array_equal(out[0, ..., k], vol[0]) for k in range(3))
    # Derived UW-Madison stacks: non-contiguous slice numbers -> nearest available.
    assert neighbour_indices([39, 56, 101]).tolist() == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    # Gap: 13 - 2 = 11 is absent; 10 is nearer than 13; tie at equal distance -> centre side.
    assert neighbour_indices([10, 13, 14, 16]).tolist() == [
        [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]
    # 10 + 1 = 11 lies halfway between 10 and 12: the tie goes to the centre slice.
    assert neighbour_indices([10, 12], offsets=(-1, 1)).tolist() == [[0, 0], [1, 1]]


def test_stack_25d_rejects_bad_input():
    with pytest.raises(ValueError, match="distinct"):
        stack_25d(np.zeros((2, 3, 3)), [1, 1])
    with pytest.raises(ValueError, match="entries"):
        stack_25d(np.zeros((2, 3, 3)), [1, 2, 3])
    with pytest.raises(ValueError, match="offsets"):
        stack_25d(np.zeros((2, 3, 3)), [1, 2], offsets=())


# ----------------------------------------------------------------------------- grid round trip
@pytest.mark.parametrize("shape", SIZES)
def test_resize_round_trip_keeps_structures_in_place(shape):
    h, w = shape
    mask = np.zeros((1, h, w, 1), bool)
    mask[0, h // 5: h // 2, w // 3: (4 * w) // 5, 0] = True
    small = prepare_masks(mask, image_size=64)
    assert small.shape == (1, 1, 64, 64)
    back = resize_proba_back(small, shape) > 0.5
    assert back.shape == mask.shape
    inter = np.logical_and(back, mask).sum()
    assert inter / np.logical_or(back, mask).sum() > 0.9


class _CentreChannel(torch.nn.Module):
    """Identity path: logits = steep function of the centre 2.5D channel."""

    def forward(self, x):
        return 40.0 * (x[:, 1:2] - 0.5).repeat(1, 2, 1, 1)


@pytest.mark.parametrize("shape", SIZES)
def test_predict_maps_back_to_each_original_grid(fitted, shape):
    h, w = shape
    image = np.full((3, h, w), 10.0, np.float32)
    image[:, h // 4: h // 2, w // 2: (7 * w) // 8] = 1000.0
    stack = SliceStack(image, None, ("a", "b"), (1, 1), ("x0", "x1", "x2"), "cx",
                       slice_numbers=(3, 4, 5))
    proba = fitted.predict_proba_stack(stack)
    assert proba.shape == (3, h, w, 2) and proba.dtype == np.float32
    assert 0.0 <= proba.min() and proba.max() <= 1.0
    identity = UNetSegmenter(fitted.config)
    identity.net_, identity.device_ = _CentreChannel(), torch.device("cpu")
    identity.classes_ = ("a", "b")
    pred = identity.predict_proba_stack(stack) > 0.5
    truth = image[..., None].repeat(2, -1) > 500
    iou = np.logical_and(pred, truth).sum() / np.logical_or(pred, truth).sum()
    assert iou > 0.95


def test_prepare_images_normalises_and_stacks():
    st = _stack("c", n=3, shape=(20, 24))
    x = prepare_images(st.image, st.slice_numbers, image_size=16)
    assert x.shape == (3, 3, 16, 16) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(x[0, 0], x[0, 1])  # edge slice repeated
    assert prepare_images(np.zeros((2, 8, 8)), (0, 1), image_size=8).max() == 0.0


# ----------------------------------------------------------------------------- augmentation
def test_augment_is_seeded_and_moves_masks_with_images():
    gen = np.random.default_rng(0)
    x = torch.from_numpy(gen.random((4, 3, 32, 32), dtype=np.float32))
    y = (x[:, 1:2] > 0.5).float().repeat(1, 2, 1, 1)
    a1 = augment_batch(x, y, torch.Generator().manual_seed(3))
    a2 = augment_batch(x, y, torch.Generator().manual_seed(3))
    assert torch.equal(a1[0], a2[0]) and torch.equal(a1[1], a2[1])
    assert a1[0].shape == x.shape and a1[1].shape == y.shape
    assert set(torch.unique(a1[1]).tolist()) <= {0.0, 1.0}
    # Without affine or intensity change, only the flip is left, applied to both.
    flip = augment_batch(x, y, torch.Generator().manual_seed(0), hflip=1.0, rotate=0, scale=0,
                         shift=0, gamma=0, brightness=0, contrast=0)
    torch.testing.assert_close(flip[0], x.flip(-1), atol=1e-5, rtol=0)
    assert torch.equal(flip[1], y.flip(-1))


# ----------------------------------------------------------------------------- training loop
def _loaders(seed=0):
    st = _stack("c", n=8, shape=(32, 32), seed=seed)
    x = prepare_images(st.image, st.slice_numbers, image_size=32)
    y = prepare_masks(st.masks, image_size=32)
    return make_loader(x, y, batch_size=4, shuffle=True, random_state=0), \
        make_loader(x, y, batch_size=8, shuffle=False)


def _net(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(3, 2, base_channels=4, depth=2)


def test_fit_net_lowers_the_loss_and_restores_best():
    train, val = _loaders()
    cfg = TrainConfig(max_epochs=8, lr=1e-2, device="cpu", progress=False, monitor="val_loss")
    hist = fit_net(_net(), train, val, config=cfg)
    losses = [e["train_loss"] for e in hist.epochs]
    assert len(losses) == 8 and hist.stopped == "max_epochs"
    assert losses[-1] < losses[0]
    best = min(e["val_loss"] for e in hist.epochs)
    assert hist.best_value == best and hist.epochs[hist.best_epoch - 1]["val_loss"] == best


def test_fit_net_time_budget_and_checkpoint(tmp_path):
    train, val = _loaders()
    ckpt = tmp_path / "best.pt"
    cfg = TrainConfig(max_epochs=None, max_minutes=1e-6, device="cpu", progress=False,
                      checkpoint_path=str(ckpt))
    hist = fit_net(_net(), train, val, config=cfg)
    assert hist.stopped == "max_minutes" and len(hist.epochs) == 1
    payload = load_checkpoint(ckpt)
    assert payload["epoch"] == 1 and "state_dict" in payload
    assert not list(tmp_path.glob(".best.pt.*"))  # no temporary left behind


def test_fit_net_step_budget_is_exact_and_reproducible():
    """Budgets in optimiser steps: the run stops after exactly ``max_steps`` batches (mid
    epoch), the learning rate follows the steps, and two runs give the same weights even
    with a (generous) time guard."""
    cfg = TrainConfig(max_epochs=None, max_steps=5, max_minutes=60.0, device="cpu",
                      progress=False)
    nets = [_net(), _net()]
    # 8 slices, batch 4: 2 steps per epoch; fresh loaders (their shuffling is seeded).
    hists = [fit_net(n, *_loaders(), config=cfg) for n in nets]
    for h in hists:
        assert h.stopped == "max_steps" and h.steps == 5
        assert [e["step"] for e in h.epochs] == [2, 4, 5]
        assert h.epochs[-1]["n_seen"] == 4  # the partial third epoch
        # The cosine schedule ended at its floor: the last step used the budget's end.
        assert h.epochs[-1]["lr"] < cfg.lr * 0.2
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # The epoch budget still ends a run first when it is the smaller one.
    h = fit_net(_net(), *_loaders(), config=TrainConfig(max_epochs=1, max_steps=100,
                                                       device="cpu", progress=False))
    assert h.stopped == "max_epochs" and h.steps == 2


def test_learning_rate_ignores_the_clock_when_a_step_budget_is_given():
    from gitract.models.train_torch import _progress

    assert _progress(0.5, None, 1000.0, 1.0, steps_done=5, max_steps=10) == 0.5
    assert _progress(0.5, 2, 1000.0, 1.0) == 0.25
    assert _progress(0.0, None, 30.0, 60.0) == 0.5  # a time budget alone


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_checkpoint(tmp_path / "bad.pt")
    save_checkpoint(tmp_path / "x.pt", {"a": torch.ones(2)})
    assert torch.equal(load_checkpoint(tmp_path / "x.pt")["a"], torch.ones(2))


def test_train_config_validation():
    with pytest.raises(ValueError, match="got none"):
        TrainConfig(max_epochs=None, max_minutes=None)
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="monitor"):
        TrainConfig(monitor="acc")
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(image_size=100, depth=3)


def test_bce_dice_loss_perfect_prediction_is_small():
    y = torch.zeros(2, 2, 8, 8)
    y[:, 0, 2:5, 2:5] = 1
    good = bce_dice_loss(40 * (y - 0.5), y)
    bad = bce_dice_loss(-40 * (y - 0.5), y)
    assert float(good) < 0.01 < float(bad)


# ----------------------------------------------------------------------------- facade
def test_cpu_reproducible_with_a_seed():
    tr, va = [_stack("c1", seed=1)], [_stack("c2", seed=2)]
    a = UNetSegmenter(TINY).fit(tr, va)
    b = UNetSegmenter(TINY).fit(tr, va)
    c = UNetSegmenter(TINY, random_state=1).fit(tr, va)
    sa, sb, sc = (m.net_.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.history_.to_dict()["epochs"][-1]["train_loss"] == b.history_.epochs[-1]["train_loss"]


def test_save_load_round_trip(fitted, tmp_path):
    st = _stack("c3", seed=3)
    path = fitted.save(tmp_path / "model")
    assert path.name == "unet.pt"
    loaded = UNetSegmenter.load(tmp_path / "model", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba_stack(st), fitted.predict_proba_stack(st))
    assert loaded.config == fitted.config and loaded.classes_ == fitted.classes_
    assert loaded.history_.best_epoch == fitted.history_.best_epoch
    proba = loaded.predict_stacks([st])
    assert proba[st.key].shape == st.masks.shape and proba[st.key].dtype == np.float32
    # The model knows nothing of thresholds: that is the evaluation layer's business.
    assert not hasattr(loaded, "tune") and not hasattr(loaded, "predict_masks")


def test_not_fitted_and_bad_stacks():
    with pytest.raises(RuntimeError, match="not fitted"):
        UNetSegmenter(TINY).predict_proba_stack(_stack("c"))
    unlabelled = SliceStack(np.ones((1, 8, 8)), None, ("a",), (1, 1), ("i",), "c")
    with pytest.raises(ValueError, match="no masks"):
        UNetSegmenter(TINY).fit([unlabelled])


def test_prepared_volume_with_neighbours_is_exactly_the_25d_input():
    """The U-Net stores one channel per slice and picks 2.5D neighbours per item: the
    same arrays as stacking first, bit for bit."""
    from gitract.models._unet_data import neighbour_indices, prepare_volume

    gen = np.random.default_rng(0)
    image = (gen.random((6, 62, 75)) * 1000).astype(np.float32)
    numbers = [3, 4, 5, 7, 8, 9]
    ref = prepare_images(image, numbers, image_size=32)
    vol = prepare_volume(image, image_size=32)
    np.testing.assert_array_equal(vol[neighbour_indices(numbers, offsets=(-2, 0, 2))], ref)
