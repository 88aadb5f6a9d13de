"""The U-Net training recipe: warm-up + cosine schedule, EMA of weights, focal loss, prior."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from gitract.models.nets import UNet  # noqa: E402
from gitract.models.train_torch import (  # noqa: E402
    TrainConfig,
    bce_dice_loss,
    ema_decay_at,
    fit_net,
    lr_at,
    make_ema,
    make_loader,
    segmentation_loss,
)
from gitract.models.train_torch._schedule import LR_FLOOR  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------- schedule
@pytest.mark.parametrize(("progress", "expected"), [
    (0.0, 0.0), (0.01, 0.2), (0.05, 1.0),
    (0.05 + 0.95 / 2, (1.0 + LR_FLOOR) / 2),  # half-way down the cosine
    (1.0, LR_FLOOR), (1.5, LR_FLOOR),
])
def test_warmup_then_cosine(progress, expected):
    assert lr_at(progress, lr=1.0, warmup_fraction=0.05) == pytest.approx(expected)


def test_schedule_without_warmup_or_cosine():
    assert lr_at(0.0, lr=2.0) == pytest.approx(2.0)
    assert lr_at(0.3, lr=2.0, warmup_fraction=0.5, scheduler="none") == pytest.approx(1.2)
    assert lr_at(0.7, lr=2.0, warmup_fraction=0.5, scheduler="none") == 2.0


def _data(n=8, size=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=gen)
    y = (x[:, 1:2] > 0.6).float().repeat(1, 2, 1, 1)
    return x.numpy(), y.numpy()


def _net(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(3, 2, base_channels=4, depth=2)


def test_fit_net_follows_the_warmup_schedule_step_by_step():
    """10 steps of 1 batch per epoch, warm-up over 20 %: the lr of each step is
    ``lr_at((step) / 10)``, recorded at the end of each epoch."""
    x, y = _data(n=4)
    cfg = TrainConfig(max_epochs=None, max_steps=10, lr=0.01, warmup_fraction=0.2,
                      device="cpu", progress=False)
    hist = fit_net(_net(), make_loader(x, y, batch_size=4, shuffle=True), config=cfg)
    lrs = [e["lr"] for e in hist.epochs]
    assert len(lrs) == 10
    for step, lr in enumerate(lrs, start=1):
        assert lr == pytest.approx(lr_at(step / 10, lr=0.01, warmup_fraction=0.2))
    assert lrs[0] == pytest.approx(0.005) and lrs[1] == pytest.approx(0.01)


# ----------------------------------------------------------------------------- EMA
def test_ema_update_arithmetic():
    net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    ema = make_ema(net, 0.5)
    w = net[0].weight
    with torch.no_grad():
        w.fill_(2.0)
        net[1].running_mean.fill_(2.0)
    ema.update_parameters(net)  # the first update copies
    assert float(ema.module[0].weight.detach()) == 2.0
    expected = 2.0
    for n, new in enumerate([4.0, 0.0, 1.0], start=1):
        with torch.no_grad():
            w.fill_(new)
            net[1].running_mean.fill_(new)
        net[1].num_batches_tracked += 1
        ema.update_parameters(net)
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * new
        assert float(ema.module[0].weight.detach()) == pytest.approx(expected)
        # Buffers are averaged the same way; integer counters take the latest value.
        assert float(ema.module[1].running_mean) == pytest.approx(expected)
        assert int(ema.module[1].num_batches_tracked) == n
    assert ema_decay_at(0, 0.99) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.99) == 0.99
    with pytest.raises(ValueError, match="ema_decay"):
        make_ema(net, 1.0)


def test_fit_net_returns_the_ema_weights():
    x, y = _data()
    base = {"max_epochs": None, "max_steps": 6, "lr": 0.01, "device": "cpu", "progress": False,
            "monitor": "train_loss"}
    plain, averaged = _net(), _net()
    h1 = fit_net(plain, make_loader(x, y, batch_size=4, shuffle=True),
                 config=TrainConfig(**base))
    h2 = fit_net(averaged, make_loader(x, y, batch_size=4, shuffle=True),
                 config=TrainConfig(**base, ema_decay=0.9))
    assert not h1.ema and h2.ema
    # Same raw trajectory (EMA does not touch training), different weights returned.
    assert [e["train_loss"] for e in h1.epochs] == [e["train_loss"] for e in h2.epochs]
    head1, head2 = plain.head.weight, averaged.head.weight
    assert not torch.allclose(head1, head2)


# ----------------------------------------------------------------------------- losses
def test_focal_loss_is_bce_at_gamma_zero_and_smaller_otherwise():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=gen) * 3
    target = (torch.rand(2, 3, 8, 8, generator=gen) > 0.7).float()
    bce = segmentation_loss(logits, target, loss="bce_dice", pixel_weight=1.0)
    assert float(segmentation_loss(logits, target, loss="focal_dice", pixel_weight=1.0,
                                   focal_gamma=0.0)) == pytest.approx(float(bce), rel=1e-5)
    focal = segmentation_loss(logits, target, loss="focal_dice", pixel_weight=1.0)
    assert 0.0 < float(focal) < float(bce)
    # The Dice part is the same whichever pixel term.
    assert float(segmentation_loss(logits, target, loss="focal_dice", pixel_weight=0.0)) == \
        pytest.approx(float(bce_dice_loss(logits, target, bce_weight=0.0)))
    with pytest.raises(ValueError, match="loss"):
        segmentation_loss(logits, target, loss="l2")


@pytest.mark.parametrize(("field", "value"), [
    ("warmup_fraction", 1.0), ("ema_decay", 1.5), ("loss", "dice"), ("focal_gamma", -1.0),
    ("grad_clip", 0.0),
])
def test_train_config_rejects(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_prior_bias_of_the_output():
    from gitract.models.unet import UNetSegmenter

    seg = UNetSegmenter(image_size=16, base_channels=4, depth=2)
    net = seg._make_net(3, 0, [0.01, 0.2, 0.0])
    p = torch.sigmoid(net.head.bias.detach()).tolist()
    assert p == pytest.approx([0.01, 0.2, 1e-3], rel=1e-4)
    assert math.isclose(float(seg._make_net(3, 0).head.bias.detach().abs().max()), 0.0, abs_tol=1.0)
