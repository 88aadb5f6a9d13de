"""Dense training of the block CNN: its loss is the block-wise loss, crops and augmentation
keep every label on the block centred at it, and a dense-trained model is a normal model."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.blocks import extract_blocks  # noqa: E402
from gitract.models.cnn import BlockCNNClassifier  # noqa: E402
from gitract.models.cnn._dense import (  # noqa: E402
    IGNORE,
    DenseSample,
    affine_margin,
    affine_pair,
    augment_pair,
    dense_loss,
    reflect_index,
)
from gitract.models.nets._block_cnn import SmallBlockCNN  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_net(block_size: int, seed: int, *, batch_norm: bool = True,
                centre_features: bool = False) -> SmallBlockCNN:
    """Random weights and batch-norm statistics (so the loss depends on all of them)."""
    gen = torch.Generator().manual_seed(seed)
    net = SmallBlockCNN(block_size, 4, (4, 8, 8), hidden=8, dropout=0.0, batch_norm=batch_norm,
                        centre_features=centre_features)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return net


def _grads(net, loss):
    net.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize(("block_size", "shape"), [(33, (13, 11)), (63, (9, 12))])
@pytest.mark.parametrize("mode", ["eval", "train-no-bn"])
@pytest.mark.parametrize("centre_features", [False, True])
def test_dense_loss_equals_mean_of_blockwise_losses(block_size, shape, mode, centre_features):
    gen = np.random.default_rng(0)
    image = gen.random(shape, dtype=np.float32)
    labels = gen.integers(0, 4, shape)
    labels[0, :3] = IGNORE  # left-out centres count in neither loss
    weight = torch.tensor([0.2, 1.0, 3.0, 5.0])
    net = _random_net(block_size, 1, batch_norm=mode == "eval", centre_features=centre_features)
    net.eval() if mode == "eval" else net.train()  # no dropout either way (p = 0)

    padded = np.pad(image, block_size // 2, mode="reflect")
    dense = dense_loss(net, torch.from_numpy(padded)[None, None],
                       torch.from_numpy(labels)[None], weight=weight)
    rows, cols = np.nonzero(labels != IGNORE)
    blocks = extract_blocks(image, rows, cols, block_size=block_size)
    blockwise = torch.nn.CrossEntropyLoss(weight=weight)(
        net(torch.from_numpy(np.ascontiguousarray(blocks))[:, None]),
        torch.from_numpy(labels[rows, cols]))
    assert float(dense.detach()) == pytest.approx(float(blockwise.detach()), rel=1e-5)
    # ... and so are its gradients: a dense step is the step on all those blocks.
    for g_dense, g_block in zip(_grads(net, dense), _grads(net, blockwise), strict=True):
        np.testing.assert_allclose(g_dense, g_block, rtol=1e-3, atol=1e-5)


def test_reflect_index_is_numpy_reflect_padding_also_past_the_edge():
    for n in (1, 2, 5):
        image = np.arange(n, dtype=float)
        for pad in (1, 4, 11):
            want = np.pad(image, pad, mode="reflect")
            np.testing.assert_array_equal(image[reflect_index(np.arange(-pad, n + pad), n)], want)


@pytest.mark.parametrize("shape", [(40, 50), (20, 9)])  # the second is smaller than the crop
def test_crop_holds_the_blocks_of_its_centres(shape):
    gen = np.random.default_rng(2)
    bs, size = 9, 24
    image = gen.random(shape, dtype=np.float32)
    labels = gen.integers(0, 3, shape).astype(np.int8)
    sample = DenseSample([image], [labels])
    crop, lab = sample.crop(0, 30, 4, crop_size=size, pad=bs // 2)
    assert crop.shape == (size + bs - 1,) * 2 and lab.shape == (size, size)
    r0 = min(max(30 - size // 2, 0), max(shape[0] - size, 0))
    c0 = min(max(4 - size // 2, 0), max(shape[1] - size, 0))
    for i, j in [(0, 0), (3, 7), (size - 1, size - 1), (5, size - 1)]:
        r, c = r0 + i, c0 + j
        if r < shape[0] and c < shape[1]:
            block = extract_blocks(image, np.array([r]), np.array([c]), block_size=bs)[0]
            np.testing.assert_array_equal(crop[i : i + bs, j : j + bs], block)
            assert lab[i, j] == labels[r, c]
        else:
            assert lab[i, j] == IGNORE


def _code(values):
    """A label that is a function of the pixel value (so it can be read back)."""
    return (np.asarray(values) * 1000).astype(np.int64) % 5


def test_augmentation_moves_labels_with_images():
    gen = np.random.default_rng(3)
    pad, size = 4, 12
    crop = gen.random((size + 2 * pad,) * 2, dtype=np.float32)
    labels = _code(crop[pad:-pad, pad:-pad])
    seen = set()
    for seed in range(24):
        out, lab = augment_pair(crop, labels, np.random.default_rng(seed), intensity=False)
        np.testing.assert_array_equal(lab, _code(out[pad:-pad, pad:-pad]))
        seen.add(out.tobytes())
        # intensity changes only the image: same geometry (drawn first), new values
        out_i, lab_i = augment_pair(crop, labels, np.random.default_rng(seed))
        np.testing.assert_array_equal(lab_i, lab)
        assert not np.array_equal(out_i, out)
    assert len(seen) == 8  # all dihedral transforms occur, none drops the labels
    np.testing.assert_array_equal(labels, _code(crop[pad:-pad, pad:-pad]))  # inputs untouched


def test_training_batches_keep_labels_on_their_pixels():
    gen = np.random.default_rng(4)
    images = [gen.random((30, 26), dtype=np.float32), gen.random((18, 40), dtype=np.float32)]
    sample = DenseSample(images, [_code(im).astype(np.int8) for im in images])
    x, y = sample.batch(gen, 16, crop_size=20, pad=3, foreground_fraction=0.5, dihedral=True)
    assert x.shape == (16, 1, 26, 26) and y.shape == (16, 20, 20) and y.dtype == torch.int64
    inner = x[:, 0, 3:-3, 3:-3].numpy()
    keep = y.numpy() != IGNORE
    np.testing.assert_array_equal(y.numpy()[keep], _code(inner)[keep])


@pytest.mark.parametrize("size", [1, 6])
def test_rotation_and_scaling_move_labels_with_images(size):
    # Images that are the row and the column coordinate: linear interpolation keeps them
    # exact, so each output pixel says where in the source it was read from.
    pad, rot, scale = 4, 20.0, 0.15
    margin = affine_margin(size + 2 * pad, rot, scale)
    n_in = size + 2 * pad + 2 * margin
    rows, cols = np.mgrid[0:n_in, 0:n_in].astype(np.float32)
    gen = np.random.default_rng(6)
    labels = gen.integers(0, 4, (size + 2 * margin,) * 2)
    moved = 0
    for seed in range(12):
        out_r, lab = affine_pair(rows, labels, np.random.default_rng(seed), margin=margin,
                                 max_rotation=rot, max_scale=scale)
        out_c, lab_c = affine_pair(cols, labels, np.random.default_rng(seed), margin=margin,
                                   max_rotation=rot, max_scale=scale)
        assert out_r.shape == (size + 2 * pad,) * 2 and lab.shape == (size, size)
        np.testing.assert_array_equal(lab, lab_c)
        # the label of each centre is the label of the source pixel its block centre
        # came from (labels are indexed by centres: image pixel minus pad)
        src_r = np.rint(out_r[pad:pad + size, pad:pad + size]).astype(int) - pad
        src_c = np.rint(out_c[pad:pad + size, pad:pad + size]).astype(int) - pad
        np.testing.assert_array_equal(lab, labels[src_r, src_c])
        # every output pixel was read inside the source crop (the margin suffices)
        assert out_r.min() >= 0 and out_r.max() <= n_in - 1
        moved += not np.allclose(out_r, rows[margin:-margin, margin:-margin])
    assert moved == 12


def test_rotated_blocks_on_the_fly_keep_their_centre_label():
    # crop_size 1: a rotation / zoom about the block centre keeps the centre pixel.
    gen = np.random.default_rng(7)
    images = [gen.random((30, 26), dtype=np.float32), gen.random((18, 40), dtype=np.float32)]
    sample = DenseSample(images, [_code(im).astype(np.int8) for im in images])
    x, y = sample.batch(gen, 64, crop_size=1, pad=5, foreground_fraction=0.5, dihedral=True,
                        max_rotation=15.0, max_scale=0.1)
    assert x.shape == (64, 1, 11, 11) and y.shape == (64, 1, 1)
    np.testing.assert_array_equal(y.numpy()[:, 0, 0], _code(x[:, 0, 5, 5].numpy()))


def test_no_rotation_or_scaling_leaves_the_batches_as_they_were():
    images = [np.random.default_rng(8).random((30, 26), dtype=np.float32)]
    sample = DenseSample(images, [_code(im).astype(np.int8) for im in images])
    a = sample.batch(np.random.default_rng(9), 8, crop_size=5, pad=3, foreground_fraction=0.5,
                     dihedral=True)
    b = sample.batch(np.random.default_rng(9), 8, crop_size=5, pad=3, foreground_fraction=0.5,
                     dihedral=True, max_rotation=0.0, max_scale=0.0)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u.numpy(), v.numpy())


def _slices(n=4):
    from skimage.draw import ellipse

    gen = np.random.default_rng(5)
    images, labels = [], []
    for k in range(n):
        image = gen.normal(0.2, 0.05, (40, 44)).astype(np.float32)
        lab = np.zeros((40, 44), np.int64)
        rr, cc = ellipse(18 + k, 20, 8, 10, shape=lab.shape)
        lab[rr, cc] = 1
        lab[30:35, 5:12] = 3
        image[lab == 1] += 0.5
        image[lab == 3] += 0.25
        images.append(np.clip(image, 0, 1))
        labels.append(lab)
    return images, labels


def _dense_model(**kw):
    params = dict(channels=(4, 8), hidden=8, max_steps=4, crop_size=16, crops_per_step=2,
                  validation_fraction=0.25, device="cpu", random_state=0,
                  intensity_augment=True, background_fraction=0.5)
    params.update(kw)
    return BlockCNNClassifier(15, **params)


def test_dense_fit_is_seeded_records_a_curve_and_round_trips(tmp_path):
    images, labels = _slices()
    model = _dense_model().fit_dense(images, labels)
    assert model.classes_.tolist() == [0, 1, 3] and model.n_features_in_ == 15 * 15
    assert model.n_steps_ == 4 and model.history_["step"][-1] == 4
    assert len(model.history_["val_loss"]) == len(model.history_["train_loss"]) == model.n_epochs_
    assert 0 <= model.best_epoch_ < model.n_epochs_
    twin = _dense_model().fit_dense(images, labels)
    for a, b in zip(model.net_.state_dict().values(), twin.net_.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    proba = model.predict_proba_dense(images[0])
    assert proba.shape == (40, 44, 3) and proba.dtype == np.float32
    rows, cols = np.array([0, 20, 39]), np.array([0, 22, 43])
    blocks = extract_blocks(images[0], rows, cols, block_size=15)
    np.testing.assert_allclose(model.predict_proba(blocks), proba[rows, cols], atol=1e-4)

    model.save(tmp_path / "cnn.pt")
    loaded = BlockCNNClassifier.load(tmp_path / "cnn.pt")
    assert loaded.n_steps_ == 4 and loaded.history_ == model.history_
    np.testing.assert_array_equal(loaded.predict_proba_dense(images[1]),
                                  model.predict_proba_dense(images[1]))
    unpickled = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(unpickled.predict_proba_dense(images[1]),
                                  model.predict_proba_dense(images[1]))


def test_dense_training_learns_the_organs():
    images, labels = _slices()
    model = _dense_model(max_steps=150, lr=1e-2, crop_size=24, validation_fraction=0.0,
                         intensity_augment=False, background_fraction=1.0,
                         centre_features=True).fit_dense(images, labels)
    proba = model.predict_proba_dense(images[2])
    pred = model.classes_[proba.argmax(-1)]
    truth = labels[2] == 1
    dice = 2 * (truth & (pred == 1)).sum() / (truth.sum() + (pred == 1).sum())
    assert dice > 0.85
    # the small organ is not learnt as well in 150 steps, but in the right place: no shift
    inside = labels[2] == 3
    assert proba[inside, 2].mean() > 2 * proba[~inside, 2].mean()
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0]


def test_blocks_on_the_fly_with_rotations_and_scalings_learn_the_organ():
    images, labels = _slices()
    kwargs = dict(max_steps=150, lr=1e-2, crop_size=1, crops_per_step=64, foreground_fraction=0.6,
                  validation_fraction=0.0, intensity_augment=False, centre_features=True,
                  class_weight=None, max_rotation=15.0, max_scale=0.1)
    model = _dense_model(**kwargs).fit_dense(images, labels)
    pred = model.classes_[model.predict_proba_dense(images[2]).argmax(-1)]
    truth = labels[2] == 1
    dice = 2 * (truth & (pred == 1)).sum() / (truth.sum() + (pred == 1).sum())
    assert dice > 0.8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_steps": 0}, "max_steps"), ({"crop_size": 0}, "crop_size"),
     ({"crops_per_step": 0}, "crops_per_step"), ({"background_fraction": 0.0}, "background_fraction"),
     ({"foreground_fraction": 1.5}, "foreground_fraction"), ({"max_rotation": -1.0}, "max_rotation"),
     ({"max_rotation": 90.0}, "max_rotation"), ({"max_scale": 0.5}, "max_scale")],
)
def test_bad_dense_params_raise_naming_them(kwargs, match):
    images, labels = _slices(2)
    with pytest.raises(ValueError, match=match):
        _dense_model(**kwargs).fit_dense(images, labels)


def test_fit_dense_rejects_bad_slices():
    images, labels = _slices(2)
    with pytest.raises(ValueError, match="equal length"):
        _dense_model().fit_dense(images, labels[:1])
    with pytest.raises(ValueError, match="shape"):
        _dense_model().fit_dense(images, [lab[:5] for lab in labels])
    with pytest.raises(ValueError, match="single class"):
        _dense_model().fit_dense(images, [np.zeros_like(lab) for lab in labels])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_amp_dense_training_predicts_like_blocks():
    images, labels = _slices()
    model = _dense_model(device="cuda", amp=True, max_steps=20).fit_dense(images, labels)
    assert model.device_.type == "cuda" and np.isfinite(model.history_["train_loss"]).all()
    proba = model.predict_proba_dense(images[0])
    rows, cols = np.array([0, 20, 39]), np.array([0, 22, 43])
    blocks = extract_blocks(images[0], rows, cols, block_size=15)
    np.testing.assert_allclose(model.predict_proba(blocks), proba[rows, cols], atol=1e-4)


def test_block_intensity_augmentation_is_seeded_and_mild():
    from gitract.models.cnn._dihedral import _augment_intensity

    x = torch.rand(16, 1, 9, 9)
    a = _augment_intensity(x, torch.Generator().manual_seed(0))
    b = _augment_intensity(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    assert float((a - x).abs().mean()) < 0.2  # gamma, contrast and noise stay small
