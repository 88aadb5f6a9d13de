"""U-Net++ and DeepLabV3+: shapes, a learning step, and the segmenter building and
reloading the net its config names."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.models.nets import DeepLabV3Plus, UNet, UNetPlusPlus, aspp_rates  # noqa: E402
from gitract.models.unet import ARCHITECTURES, UNetConfig, UNetSegmenter  # noqa: E402

NETS = [UNetPlusPlus, DeepLabV3Plus]
NET_OF = {"unet": UNet, "unetpp": UNetPlusPlus, "deeplabv3plus": DeepLabV3Plus}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a busy 2-core machine two OpenMP threads spin and crawl."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("cls", NETS)
@pytest.mark.parametrize("in_channels", [1, 3, 5])
@pytest.mark.parametrize(("rows", "cols"), [(32, 32), (33, 31), (40, 27)])
def test_logits_have_the_input_size_for_odd_and_even_sides(cls, in_channels, rows, cols):
    net = cls(in_channels, 3, base_channels=4, depth=3)
    out = net(torch.zeros(2, in_channels, rows, cols))
    assert out.shape == (2, 3, rows, cols) and out.dtype == torch.float32


@pytest.mark.parametrize("cls", NETS)
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_every_depth_builds_and_runs(cls, depth):
    net = cls(3, 2, base_channels=4, depth=depth)
    assert net(torch.zeros(1, 3, 48, 48)).shape == (1, 2, 48, 48)
    assert net.multiple == 2**depth


@pytest.mark.parametrize("cls", NETS)
def test_a_few_gradient_steps_lower_the_loss_on_a_tiny_batch(cls):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 24, generator=gen)
    y = (x[:, :2] > 0.5).float()  # a pixel-wise rule the net can fit in a few steps
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = cls(3, 2, base_channels=4, depth=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(5):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    # Every parameter takes part (no branch left out of the graph).
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("cls", NETS)
def test_bad_options_and_inputs_are_named(cls):
    with pytest.raises(ValueError, match="depth must be a positive int"):
        cls(3, 3, depth=0)
    with pytest.raises(ValueError, match="base_channels"):
        cls(3, 3, base_channels=2.5)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3, H, W\)"):
        cls(3, 3, base_channels=4, depth=2)(torch.zeros(1, 2, 16, 16))


def test_deeplab_uses_the_scaled_rates_and_rejects_bad_ones():
    assert aspp_rates(128, 4) == (1, 3, 4)
    assert aspp_rates(320, 4) == (4, 7, 11)
    assert aspp_rates(16, 4) == (1,)
    net = DeepLabV3Plus(3, 3, base_channels=4, depth=2, atrous_rates=(2, 5))
    dilations = sorted(m.dilation[0] for m in net.aspp.modules()
                       if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert dilations == [2, 5]
    with pytest.raises(ValueError, match="atrous_rates"):
        DeepLabV3Plus(3, 3, atrous_rates=(0, 2))


def test_deeplab_trains_on_a_batch_of_one():
    # The image-pooling branch has no batch norm: its 1x1 map would break training on a
    # last batch of one slice.
    net = DeepLabV3Plus(3, 2, base_channels=4, depth=2).train()
    net(torch.rand(1, 3, 16, 16)).sum().backward()


# ------------------------------------------------------------------ the track's segmenter
def _stack(case: str, seed: int):
    from skimage.draw import disk

    from gitract.data.record import SliceStack

    gen = np.random.default_rng(seed)
    image = gen.normal(100, 10, (4, 36, 40)).astype(np.float32)
    masks = np.zeros((4, 36, 40, 2), bool)
    for s in range(4):
        rr, cc = disk((18 + gen.integers(-3, 4), 12), 6, shape=(36, 40))
        masks[s, rr, cc, 0] = True
        rr, cc = disk((18, 28 + gen.integers(-3, 4)), 5, shape=(36, 40))
        masks[s, rr, cc, 1] = True
    image[masks[..., 0]] += 80
    image[masks[..., 1]] += 40
    ids = tuple(f"{case}_day0_slice_{i:04d}" for i in range(4))
    return SliceStack(image, masks, ("a", "b"), (1.5, 1.5), ids, case, "day0")


TINY = UNetConfig(image_size=32, base_channels=4, depth=2, batch_size=4, max_steps=2,
                  max_epochs=None, device="cpu", num_threads=1, progress=False)


@pytest.mark.parametrize("architecture", ["unetpp", "deeplabv3plus"])
def test_save_load_round_trip_rebuilds_the_saved_architecture(architecture, tmp_path):
    seg = UNetSegmenter(TINY, architecture=architecture).fit([_stack("c1", 1)],
                                                             [_stack("c2", 2)])
    assert type(seg.net_) is NET_OF[architecture]
    seg.save(tmp_path / "model")
    loaded = UNetSegmenter.load(tmp_path / "model", device="cpu")
    assert loaded.config.architecture == architecture
    assert type(loaded.net_) is NET_OF[architecture]
    st = _stack("c3", 3)
    proba = loaded.predict_proba_stack(st)
    np.testing.assert_array_equal(proba, seg.predict_proba_stack(st))
    assert proba.shape == st.masks.shape and proba.dtype == np.float32
    # The prior bias start reaches the output layer of every architecture.
    fresh = seg._make_net(2, 0, foreground=[0.01, 0.5])
    np.testing.assert_allclose(fresh.head.bias.detach().numpy(),
                               [np.log(0.01 / 0.99), 0.0], atol=1e-6)


def test_config_names_an_unknown_architecture():
    assert ARCHITECTURES == ("unet", "unetpp", "deeplabv3plus")
    assert UNetConfig().architecture == "unet"  # files saved before the field load as U-Nets
    with pytest.raises(ValueError, match="architecture must be one of unet, unetpp, "
                                         "deeplabv3plus, got 'segnet'"):
        UNetConfig(architecture="segnet")
    for name in ARCHITECTURES:
        net = UNetSegmenter(TINY, architecture=name)._make_net(2, 0)
        assert type(net) is NET_OF[name]
