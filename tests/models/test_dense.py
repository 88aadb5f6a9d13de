"""The dense (fully convolutional) CNN pass equals block-by-block classification."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.blocks import extract_blocks  # noqa: E402
from gitract.models.cnn import BlockCNNClassifier  # noqa: E402
from gitract.models.nets._block_cnn import SmallBlockCNN, plan_block_cnn, to_dense  # noqa: E402

TOL = 1e-4


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny nets run fastest on one thread, and the 2 cores are shared with other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_net(block_size: int, seed: int, channels=(4, 8, 8), *,
                centre_features: bool = False) -> SmallBlockCNN:
    """Random weights *and* random batch-norm statistics (so folding them is tested)."""
    gen = torch.Generator().manual_seed(seed)
    net = SmallBlockCNN(block_size, 4, channels, hidden=8, dropout=0.5,
                        centre_features=centre_features)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return net.eval()


def _positions(shape, gen, n=60):
    """Random centres plus all four corners and edge midpoints."""
    h, w = shape
    rows = np.concatenate([gen.integers(0, h, n), [0, 0, h - 1, h - 1, 0, h // 2, h - 1, h // 2]])
    cols = np.concatenate([gen.integers(0, w, n), [0, w - 1, 0, w - 1, w // 2, 0, w // 2, w - 1]])
    return rows, cols


@pytest.mark.parametrize("block_size", [33, 63])
def test_plan_tiles_the_block_exactly(block_size):
    plan = plan_block_cnn(block_size, 3)
    size = block_size
    for kind, kernel, after in plan:
        if kind == "conv":
            assert after == size - (kernel - 1)
        else:  # pooling windows end exactly at the map's last row
            assert (size - kernel) % 2 == 0 and after == (size - kernel) // 2 + 1
        size = after
    # receptive field of the dense twin == block: total shrink is block_size - 1
    shrink, dil = 0, 1
    for kind, kernel, _ in plan:
        shrink += dil * (kernel - 1)
        if kind == "pool":
            dil *= 2
    shrink += dil * (plan[-1][2] - 1)
    assert shrink == block_size - 1


@pytest.mark.parametrize("bad", [0, 2, 32, 3.0, True])
def test_plan_rejects_bad_block_size(bad):
    with pytest.raises(ValueError, match="block_size"):
        plan_block_cnn(bad, 3)


def test_plan_rejects_too_small_block():
    with pytest.raises(ValueError, match="too small"):
        plan_block_cnn(5, 3)


@pytest.mark.parametrize(("block_size", "channels"), [(33, (4, 8, 8)), (63, (4, 8, 8)),
                                                     (17, (4, 8))])  # final map 4, 12, 5
@pytest.mark.parametrize("shape", [(41, 57), (12, 20)])
@pytest.mark.parametrize("centre_features", [False, True])
def test_dense_net_equals_blockwise_random_weights(block_size, channels, shape, centre_features):
    gen = np.random.default_rng(block_size + shape[0])
    net = _random_net(block_size, seed=block_size, channels=channels,
                      centre_features=centre_features)
    dense = to_dense(net)
    # the trainable dense pass (dense training) is the same function as the folded twin
    padded = torch.from_numpy(np.pad(gen.random(shape, dtype=np.float32), block_size // 2,
                                     mode="reflect"))[None, None]
    with torch.inference_mode():
        np.testing.assert_allclose(net.forward_dense(padded), dense(padded), atol=TOL, rtol=0)
    image = gen.random(shape, dtype=np.float32)
    pad = block_size // 2
    padded = torch.from_numpy(np.pad(image, pad, mode="reflect"))[None, None]
    with torch.inference_mode():
        dense_logits = dense(padded)[0].permute(1, 2, 0).numpy()
        assert dense_logits.shape == (*shape, 4)
        rows, cols = _positions(shape, gen)
        blocks = extract_blocks(image, rows, cols, block_size=block_size)
        block_logits = net(torch.from_numpy(np.ascontiguousarray(blocks))[:, None]).numpy()
    np.testing.assert_allclose(dense_logits[rows, cols], block_logits, atol=TOL, rtol=0)


def test_to_dense_keeps_net_untouched_and_rejects_others():
    net = _random_net(33, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    to_dense(net)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(TypeError, match="SmallBlockCNN"):
        to_dense(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("block_size", [33, 63])
def test_predict_proba_dense_equals_predict_proba_after_training(block_size):
    gen = np.random.default_rng(3)
    n = 96
    X = gen.random((n, block_size * block_size), dtype=np.float32)
    y = gen.integers(0, 4, n)
    X[y == 2] += 0.5  # something learnable, so training moves the weights and BN stats
    model = BlockCNNClassifier(
        block_size, channels=(4, 8, 8), hidden=8, max_epochs=2, batch_size=32,
        device="cpu", random_state=0,
    ).fit(X, y)
    image = gen.random((30, 26), dtype=np.float32)
    proba = model.predict_proba_dense(image)
    assert proba.shape == (30, 26, 4) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, atol=1e-5)
    rows, cols = _positions(image.shape, gen, n=40)
    blocks = extract_blocks(image, rows, cols, block_size=block_size)
    np.testing.assert_allclose(proba[rows, cols], model.predict_proba(blocks), atol=TOL, rtol=0)


def test_predict_proba_dense_columns_follow_classes_():
    gen = np.random.default_rng(4)
    X = gen.random((40, 33 * 33), dtype=np.float32)
    y = np.array([1, 3] * 20)  # only two of the four classes present
    model = BlockCNNClassifier(
        33, channels=(4, 8, 8), hidden=8, max_epochs=1, device="cpu", random_state=0
    ).fit(X, y)
    assert model.classes_.tolist() == [1, 3]
    proba = model.predict_proba_dense(gen.random((9, 11), dtype=np.float32))
    assert proba.shape == (9, 11, 2)


def test_predict_proba_dense_rejects_bad_image():
    gen = np.random.default_rng(5)
    model = BlockCNNClassifier(
        33, channels=(4, 8, 8), hidden=8, max_epochs=1, device="cpu", random_state=0
    ).fit(gen.random((20, 33 * 33), dtype=np.float32), np.arange(20) % 2)
    with pytest.raises(ValueError, match="2D"):
        model.predict_proba_dense(np.zeros((2, 8, 8), np.float32))


def test_probmaps_uses_dense_path_and_matches_blockwise():
    probmaps = pytest.importorskip("gitract.probmaps")
    gen = np.random.default_rng(6)
    X = gen.random((40, 33 * 33), dtype=np.float32)
    model = BlockCNNClassifier(
        33, channels=(4, 8, 8), hidden=8, max_epochs=1, device="cpu", random_state=0
    ).fit(X, np.arange(40) % 4)
    image = gen.random((21, 18), dtype=np.float32)
    for step in (1, 4):
        dense = probmaps.predict_proba_map(model, image, step=step)
        blockwise = probmaps.predict_proba_map(
            model, image, step=step, block_size=33, use_dense=False
        )
        assert dense.shape == (21, 18, 3) and dense.dtype == np.float32
        np.testing.assert_allclose(dense, blockwise, atol=TOL, rtol=0)
