"""Context features of the block CNN (late fusion): the dense pass with context maps is the
block-wise net with each centre's context values, augmentation moves the maps with the
labels, and the estimator fits and predicts with them on both paths."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.blocks import extract_blocks  # noqa: E402
from gitract.features import RawBlockFeaturizer, context_maps, context_names  # noqa: E402
from gitract.models.cnn import BlockCNNClassifier  # noqa: E402
from gitract.models.cnn._dense import (  # noqa: E402
    IGNORE,
    DenseSample,
    augment_pair,
    dense_loss,
)
from gitract.models.nets._block_cnn import SmallBlockCNN, to_dense  # noqa: E402

TOL = 1e-4
K = len(context_names())


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_net(block_size: int, seed: int, *, n_context: int = 3, channels=(4, 8),
                centre_features: bool = False, batch_norm: bool = True) -> SmallBlockCNN:
    """Random weights and batch-norm statistics; no dropout (p = 0)."""
    gen = torch.Generator().manual_seed(seed)
    net = SmallBlockCNN(block_size, 4, channels, hidden=8, dropout=0.0, batch_norm=batch_norm,
                        centre_features=centre_features, n_context=n_context)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return net.eval()


def _image_and_context(shape, n_context, seed):
    gen = np.random.default_rng(seed)
    image = gen.random(shape, dtype=np.float32)
    maps = gen.normal(size=(n_context, *shape)).astype(np.float32)
    return image, maps


@pytest.mark.parametrize(("block_size", "channels"), [(17, (4, 8)), (33, (4, 8, 8))])
@pytest.mark.parametrize("centre_features", [False, True])
def test_dense_forward_with_context_equals_blockwise(block_size, channels, centre_features):
    shape = (19, 23)
    image, maps = _image_and_context(shape, 3, block_size)
    net = _random_net(block_size, 1, channels=channels, centre_features=centre_features)
    padded = torch.from_numpy(np.pad(image, block_size // 2, mode="reflect"))[None, None]
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    blocks = extract_blocks(image, rows, cols, block_size=block_size)
    with torch.inference_mode():
        want = net(torch.from_numpy(np.ascontiguousarray(blocks))[:, None],
                   torch.from_numpy(np.ascontiguousarray(maps[:, rows, cols].T))).numpy()
        for dense in (net.forward_dense, to_dense(net)):
            got = dense(padded, torch.from_numpy(maps)[None])[0].permute(1, 2, 0).numpy()
            np.testing.assert_allclose(got[rows, cols], want, atol=TOL, rtol=0)
        # the context matters: other values give other logits
        other = net.forward_dense(padded, torch.zeros(1, 3, *shape))
        assert not torch.allclose(other, net.forward_dense(padded, torch.from_numpy(maps)[None]))


@pytest.mark.parametrize("mode", ["eval", "train-no-bn"])
def test_dense_loss_with_context_equals_mean_of_blockwise_losses(mode):
    block_size, shape = 17, (11, 13)
    image, maps = _image_and_context(shape, 3, 7)
    labels = np.random.default_rng(8).integers(0, 4, shape)
    labels[0, :3] = IGNORE
    weight = torch.tensor([0.2, 1.0, 3.0, 5.0])
    net = _random_net(block_size, 2, batch_norm=mode == "eval", centre_features=True)
    net.eval() if mode == "eval" else net.train()
    padded = np.pad(image, block_size // 2, mode="reflect")
    dense = dense_loss(net, torch.from_numpy(padded)[None, None], torch.from_numpy(labels)[None],
                       weight=weight, context=torch.from_numpy(maps)[None])
    rows, cols = np.nonzero(labels != IGNORE)
    blocks = extract_blocks(image, rows, cols, block_size=block_size)
    blockwise = torch.nn.CrossEntropyLoss(weight=weight)(
        net(torch.from_numpy(np.ascontiguousarray(blocks))[:, None],
            torch.from_numpy(np.ascontiguousarray(maps[:, rows, cols].T))),
        torch.from_numpy(labels[rows, cols]))
    assert float(dense.detach()) == pytest.approx(float(blockwise.detach()), rel=1e-5)
    grads = []
    for loss in (dense, blockwise):
        net.zero_grad()
        loss.backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for g_dense, g_block in zip(*grads, strict=True):
        np.testing.assert_allclose(g_dense, g_block, rtol=1e-3, atol=1e-5)


def test_net_refuses_a_missing_or_misshapen_context():
    net = _random_net(17, 0, n_context=3)
    x, padded = torch.zeros(2, 1, 17, 17), torch.zeros(1, 1, 20, 21)
    with pytest.raises(ValueError, match=r"context must have shape \(2, 3\)"):
        net(x)
    with pytest.raises(ValueError, match=r"context must have shape \(2, 3\)"):
        net(x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"context must have shape \(1, 3, 4, 5\)"):
        net.forward_dense(padded, torch.zeros(1, 3, 5, 4))
    with pytest.raises(ValueError, match=r"context must have shape \(1, 3, 4, 5\)"):
        to_dense(net)(padded)
    plain = _random_net(17, 0, n_context=0)
    with pytest.raises(ValueError, match="n_context=0"):
        plain(x, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_context"):
        SmallBlockCNN(17, channels=(4, 8), n_context=-1)


def test_without_context_the_net_is_unchanged_and_old_nets_unpickle():
    torch.manual_seed(0)
    before = SmallBlockCNN(17, channels=(4, 8), hidden=8)
    torch.manual_seed(0)
    now = SmallBlockCNN(17, channels=(4, 8), hidden=8, n_context=0)
    for (ka, a), (kb, b) in zip(before.state_dict().items(), now.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(a, b)
    assert now.head[0].in_features == 8
    with_context = SmallBlockCNN(17, channels=(4, 8), hidden=8, n_context=K)
    assert with_context.head[0].in_features == 8 + K
    # a net pickled before n_context existed has no such attribute: it has no context
    old = _random_net(17, 3, n_context=0)
    del old.__dict__["n_context"]
    old = pickle.loads(pickle.dumps(old))
    x = torch.rand(3, 1, 17, 17)
    with torch.inference_mode():
        np.testing.assert_allclose(old(x), _random_net(17, 3, n_context=0)(x), atol=0, rtol=0)
        assert to_dense(old)(torch.rand(1, 1, 20, 20)).shape == (1, 4, 4, 4)


def _code(values):
    return (np.asarray(values) * 1000).astype(np.int64) % 5


def test_augmentation_moves_context_with_labels_and_leaves_its_values():
    gen = np.random.default_rng(3)
    pad, size = 4, 12
    crop = gen.random((size + 2 * pad,) * 2, dtype=np.float32)
    labels = _code(crop[pad:-pad, pad:-pad])
    context = np.stack([labels * 1.5, -labels - 0.25]).astype(np.float32)
    for seed in range(16):
        for intensity in (False, True):
            plain = augment_pair(crop, labels, np.random.default_rng(seed), intensity=intensity)
            out, lab, ctx = augment_pair(crop, labels, np.random.default_rng(seed),
                                         intensity=intensity, context=context)
            # the same draws as without context: the image and labels are unchanged
            np.testing.assert_array_equal(out, plain[0])
            np.testing.assert_array_equal(lab, plain[1])
            # the maps moved with the labels, their values untouched (also by intensity)
            np.testing.assert_array_equal(ctx, np.stack([lab * 1.5, -lab - 0.25]))
            assert ctx.dtype == np.float32 and ctx.flags.c_contiguous
    np.testing.assert_array_equal(context[0], labels * 1.5)  # input untouched


class _CodedPlanes:
    """Stands in for ContextPlanes: one map holding each centre's label."""

    n_features = 1

    def __init__(self, labels):
        self.labels = labels

    def window(self, row0, col0, height, width):
        return self.labels[None, row0 : row0 + height, col0 : col0 + width].astype(np.float32)


def test_training_batches_keep_context_on_their_centres():
    gen = np.random.default_rng(4)
    images = [gen.random((30, 26), dtype=np.float32), gen.random((18, 40), dtype=np.float32)]
    labels = [_code(im).astype(np.int8) for im in images]
    sample = DenseSample(images, labels, [_CodedPlanes(lab) for lab in labels])
    options = dict(crop_size=20, pad=3, foreground_fraction=0.5, dihedral=True, intensity=True)
    x, y, c = sample.batch(np.random.default_rng(9), 16, **options)
    assert c.shape == (16, 1, 20, 20) and c.dtype == torch.float32
    keep = y.numpy() != IGNORE
    np.testing.assert_array_equal(c.numpy()[:, 0][keep], y.numpy()[keep])
    assert (c.numpy()[:, 0][~keep] == 0).all()  # centres outside a small slice
    # without context: the same draws, so the same images and labels
    x0, y0 = DenseSample(images, labels).batch(np.random.default_rng(9), 16, **options)
    assert torch.equal(x0, x) and torch.equal(y0, y)


def test_rotated_blocks_on_the_fly_keep_their_centre_context():
    # crop_size 1 with a rotation / zoom: the centre's context value is its own (the
    # coded planes hold the label), and only the image pixels around it turned.
    gen = np.random.default_rng(5)
    images = [gen.random((30, 26), dtype=np.float32), gen.random((18, 40), dtype=np.float32)]
    labels = [_code(im).astype(np.int8) for im in images]
    sample = DenseSample(images, labels, [_CodedPlanes(lab) for lab in labels])
    x, y, c = sample.batch(gen, 32, crop_size=1, pad=4, foreground_fraction=0.5, dihedral=True,
                           max_rotation=20.0, max_scale=0.15)
    assert c.shape == (32, 1, 1, 1)
    np.testing.assert_allclose(c.numpy()[:, 0, 0, 0], y.numpy()[:, 0, 0])
    np.testing.assert_array_equal(y.numpy()[:, 0, 0], _code(x[:, 0, 4, 4].numpy()))


def test_crop_context_is_the_context_maps_of_its_centres():
    from skimage.draw import ellipse

    image = np.full((40, 36), 0.05, np.float32)
    rr, cc = ellipse(20, 18, 15, 13, shape=image.shape)
    image[rr, cc] = 0.6
    labels = (image > 0.3).astype(np.int8)
    from gitract.features import prepare_context

    sample = DenseSample([image], [labels], [prepare_context(image, 9)])
    crop, lab, ctx = sample.crop(0, 30, 4, crop_size=16, pad=4)
    maps = context_maps(image, 9)
    r0, c0 = 30 - 8, 0
    np.testing.assert_array_equal(ctx, maps[:, r0 : r0 + 16, c0 : c0 + 16])
    small = DenseSample([image[:10]], [labels[:10]], [prepare_context(image[:10], 9)])
    _, lab, ctx = small.crop(0, 5, 5, crop_size=16, pad=4)
    assert (lab[10:] == IGNORE).all() and (ctx[:, 10:] == 0).all()
    np.testing.assert_array_equal(ctx[:, :10], context_maps(image[:10], 9)[:, :, :16])


# ------------------------------------------------------------------ the estimator
def _slices(n=4):
    from skimage.draw import ellipse

    gen = np.random.default_rng(5)
    images, labels = [], []
    for k in range(n):
        image = gen.normal(0.05, 0.02, (40, 44)).astype(np.float32)
        rr, cc = ellipse(20, 22, 17, 19, shape=image.shape)
        image[rr, cc] += 0.3
        lab = np.zeros((40, 44), np.int64)
        rr, cc = ellipse(16 + k, 20, 6, 8, shape=lab.shape)
        lab[rr, cc] = 1
        lab[28:33, 10:16] = 3
        image[lab == 1] += 0.4
        image[lab == 3] += 0.2
        images.append(np.clip(image, 0, 1))
        labels.append(lab)
    return images, labels


def _model(**kw):
    params = dict(channels=(4, 8), hidden=8, max_steps=4, crop_size=16, crops_per_step=2,
                  validation_fraction=0.25, device="cpu", random_state=0,
                  intensity_augment=True, context_features=True, max_epochs=2, batch_size=32)
    params.update(kw)
    return BlockCNNClassifier(15, **params)


def test_fit_dense_with_context_round_trips(tmp_path):
    images, labels = _slices()
    model = _model().fit_dense(images, labels)
    assert model.net_.n_context == K and model.n_features_in_ == 15 * 15 + K
    twin = _model().fit_dense(images, labels)
    for a, b in zip(model.net_.state_dict().values(), twin.net_.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    proba = model.predict_proba_dense(images[0])
    assert proba.shape == (40, 44, 3) and proba.dtype == np.float32
    # the dense pass is the block-wise one on raw pixels + context columns
    rows, cols = np.array([0, 20, 39, 5]), np.array([0, 22, 43, 30])
    X = RawBlockFeaturizer(block_size=15, context=True).transform(images[0], rows, cols)
    np.testing.assert_allclose(model.predict_proba(X), proba[rows, cols], atol=TOL)
    model.save(tmp_path / "cnn.pt")
    loaded = BlockCNNClassifier.load(tmp_path / "cnn.pt")
    assert loaded.context_features is True
    np.testing.assert_array_equal(loaded.predict_proba_dense(images[1]),
                                  model.predict_proba_dense(images[1]))
    unpickled = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(unpickled.predict_proba_dense(images[1]),
                                  model.predict_proba_dense(images[1]))


def test_fit_on_blocks_with_context_columns():
    images, labels = _slices(3)
    featurizer = RawBlockFeaturizer(block_size=15, context=True)
    gen = np.random.default_rng(0)
    Xs, ys = [], []
    for image, lab in zip(images, labels, strict=True):
        rows, cols = gen.integers(0, 40, 40), gen.integers(0, 44, 40)
        Xs.append(featurizer.transform(image, rows, cols))
        ys.append(lab[rows, cols])
    X, y = np.concatenate(Xs), np.concatenate(ys)
    model = _model().fit(X, y)
    assert model.n_features_in_ == 15 * 15 + K and model.net_.n_context == K
    proba = model.predict_proba(X[:5])
    assert proba.shape == (5, len(model.classes_))
    dense = model.predict_proba_dense(images[0])
    rows, cols = np.array([3, 30]), np.array([7, 40])
    np.testing.assert_allclose(model.predict_proba(featurizer.transform(images[0], rows, cols)),
                               dense[rows, cols], atol=TOL)
    with pytest.raises(ValueError, match="240 features"):
        model.predict_proba(X[:, :225])
    with pytest.raises(ValueError, match=r"needs 225 \+ 15 context columns"):
        _model().fit(X[:, :225], y)
    with pytest.raises(ValueError, match="context_features=True"):
        _model().fit(X[:, :225].reshape(-1, 15, 15), y)
    with pytest.raises(ValueError, match="context_features must be a bool"):
        _model(context_features="yes").fit(X, y)


def test_context_teaches_what_the_pixels_cannot():
    """Upper and lower halves of a uniform body differ only in where they lie."""
    from skimage.draw import ellipse

    gen = np.random.default_rng(0)
    images, labels = [], []
    for _ in range(3):
        image = gen.normal(0.05, 0.01, (40, 40)).astype(np.float32)
        rr, cc = ellipse(20, 20, 17, 17, shape=image.shape)
        image[rr, cc] += gen.normal(0.5, 0.05, len(rr)).astype(np.float32)
        lab = np.zeros((40, 40), np.int64)
        lab[rr, cc] = np.where(rr < 20, 1, 2)
        images.append(np.clip(image, 0, 1))
        labels.append(lab)
    params = dict(channels=(4, 8), hidden=16, max_steps=120, crop_size=16, crops_per_step=2,
                  lr=2e-2, validation_fraction=0.0, device="cpu", random_state=0, augment=False)
    inner = np.zeros((40, 40), bool)
    inner[11:17, 15:26] = inner[24:30, 15:26] = True  # deep inside: no edge in the block

    def accuracy(context):
        model = BlockCNNClassifier(9, context_features=context, **params)
        pred = model.fit_dense(images, labels).predict_proba_dense(images[0]).argmax(-1)
        return (model.classes_[pred] == labels[0])[inner].mean()

    assert accuracy(True) > 0.95 > accuracy(False) + 0.2


def test_model_pickled_before_context_features_loads_without_them():
    images, labels = _slices(2)
    model = _model(context_features=False, validation_fraction=0.0).fit_dense(images, labels)
    state = model.__getstate__()
    del state["context_features"]
    old = BlockCNNClassifier.__new__(BlockCNNClassifier)
    old.__setstate__(state)
    assert old.context_features is False and old.net_.n_context == 0
    np.testing.assert_array_equal(old.predict_proba_dense(images[0]),
                                  model.predict_proba_dense(images[0]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("training", ["dense", "blocks"])
def test_cuda_amp_training_with_context_predicts_like_blocks(training):
    images, labels = _slices()
    model = _model(device="cuda", amp=True, max_steps=20)
    featurizer = RawBlockFeaturizer(block_size=15, context=True)
    if training == "dense":
        model.fit_dense(images, labels)
    else:
        rows, cols = np.meshgrid(np.arange(0, 40, 3), np.arange(0, 44, 3), indexing="ij")
        rows, cols = rows.ravel(), cols.ravel()
        X = np.concatenate([featurizer.transform(im, rows, cols) for im in images])
        model.fit(X, np.concatenate([lab[rows, cols] for lab in labels]))
    assert model.device_.type == "cuda" and np.isfinite(model.history_["train_loss"]).all()
    proba = model.predict_proba_dense(images[0])
    rows, cols = np.array([0, 20, 39]), np.array([0, 22, 43])
    np.testing.assert_allclose(model.predict_proba(featurizer.transform(images[0], rows, cols)),
                               proba[rows, cols], atol=TOL)
