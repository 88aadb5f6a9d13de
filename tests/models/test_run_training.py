"""The one torch training loop (:func:`gitract.models.train_torch.run_training`).

Every torch model trains there: the segmentation nets (``fit_net``), the block CNN on a
sample of blocks and trained densely (crops, or blocks drawn on the fly). Each of them
had its own loop before; ``_old_*`` below are those loops as they were (single process,
CPU), kept as oracles: the one loop must give the same weights, histories and checkpoint
choices bit for bit (same batches, same draws of every generator in the same order, same
evaluation points).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.models.cnn import BlockCNNClassifier  # noqa: E402
from gitract.models.cnn import _classifier as cnn_classifier  # noqa: E402
from gitract.models.cnn import _dense as cnn_dense  # noqa: E402
from gitract.models.cnn._dihedral import _augment, _augment_intensity  # noqa: E402
from gitract.models.nets import UNet  # noqa: E402
from gitract.models.train_torch import (  # noqa: E402
    PROGRESS,
    TrainConfig,
    _better,
    _progress,
    evaluate_net,
    fit_net,
    lr_at,
    make_ema,
    make_loader,
    run_training,
    segmentation_loss,
)
from gitract.models.unet import augment_batch  # noqa: E402

BS = 9


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------- oracles
def _old_train_blocks(model, X_tr, y_tr, X_va, y_va, n_classes, rng):
    """``cnn._blocks.train_blocks`` before the one loop (CPU, no AMP, no bar)."""
    net = model._make_net(n_classes)
    gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    weight = None
    if model.class_weight == "balanced":
        counts = np.bincount(y_tr, minlength=n_classes).astype(np.float64)
        w = np.where(counts > 0, len(y_tr) / (n_classes * np.maximum(counts, 1)), 0.0)
        weight = torch.as_tensor(w, dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.AdamW(net.parameters(), lr=float(model.lr),
                            weight_decay=float(model.weight_decay))
    bs, n_px = BS, BS * BS
    rows = X_tr.rows if hasattr(X_tr, "rows") else None
    Xt = torch.from_numpy(X_tr.X if rows is not None else X_tr)
    rows_t = None if rows is None else torch.from_numpy(rows)
    yt = torch.from_numpy(y_tr.astype(np.int64))
    history = {"train_loss": [], "val_loss": []}
    best_loss, best_state, best_epoch, bad, n_steps = math.inf, None, 0, 0, 0
    for epoch in range(int(model.max_epochs)):
        net.train()
        perm = torch.randperm(len(yt), generator=gen)
        total, count = 0.0, 0
        for start in range(0, len(perm), int(model.batch_size)):
            idx = perm[start : start + int(model.batch_size)]
            if len(idx) < 2 and len(perm) >= 2:
                continue
            batch = Xt[idx if rows_t is None else rows_t[idx]]
            xb = batch[:, :n_px].reshape(-1, 1, bs, bs)
            cb = batch[:, n_px:] if model._n_context else None
            if model.augment:
                xb = _augment(xb, gen)
            if model.intensity_augment:
                xb = _augment_intensity(xb, gen)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb, cb), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            n_steps += 1
        history["train_loss"].append(total / max(count, 1))
        if X_va is not None:
            val = model._eval_loss(net, X_va, y_va, loss_fn)
            history["val_loss"].append(val)
            if val < best_loss - 1e-7:
                best_loss, best_epoch, bad = val, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                bad += 1
                if bad >= int(model.early_stopping_patience):
                    break
        else:
            best_epoch = epoch
    if best_state is not None:
        net.load_state_dict(best_state)
    model.net_ = net.eval()
    model.history_ = history
    model.best_epoch_ = best_epoch
    model.n_epochs_ = len(history["train_loss"])
    model.n_steps_ = n_steps


def _old_train_dense(model, train, val, n_classes, rng):
    """``cnn._dense.train_dense`` before the one loop (CPU, no AMP, no bar)."""
    pad, crop_size, per_step = BS // 2, int(model.crop_size), int(model.crops_per_step)
    n_steps = (int(model.max_steps) if model.max_steps is not None
               else int(model.max_epochs) * -(-len(train) // per_step))
    net = model._make_net(n_classes).train()
    w = cnn_dense._class_weight(model, train.labels, n_classes)
    weight = None if w is None else torch.as_tensor(w, dtype=torch.float32)
    opt = torch.optim.AdamW(net.parameters(), lr=float(model.lr),
                            weight_decay=float(model.weight_decay))
    options = {"crop_size": crop_size, "pad": pad,
               "foreground_fraction": float(model.foreground_fraction)}
    val_batch = None
    if val is not None and len(val):
        val_gen = np.random.default_rng(rng.integers(2**63 - 1))
        val_batch = val.batch(val_gen, cnn_dense.n_val_crops(crop_size), **options)
    train_gen = np.random.default_rng(rng.integers(2**63 - 1))
    mask_gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    n_eval = cnn_dense.N_EVALUATIONS
    eval_at = {max(1, round(n_steps * (i + 1) / n_eval)) for i in range(n_eval)}
    history = {"step": [], "train_loss": [], "val_loss": []}
    best, total, count = (math.inf, None, 0), 0.0, 0
    for step in range(1, n_steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step / n_steps, lr=float(model.lr),
                                warmup_fraction=cnn_dense.WARMUP_FRACTION)
        x, y, *context = train.batch(train_gen, per_step, dihedral=bool(model.augment),
                                     intensity=bool(model.intensity_augment),
                                     max_rotation=float(model.max_rotation),
                                     max_scale=float(model.max_scale), **options)
        context = context[0] if context else None
        if float(model.background_fraction) < 1.0:
            drop = torch.rand(y.shape, generator=mask_gen) >= float(model.background_fraction)
            y = torch.where((y == 0) & drop, torch.full_like(y, cnn_dense.IGNORE), y)
        if bool((y != cnn_dense.IGNORE).any()):
            opt.zero_grad(set_to_none=True)
            loss = cnn_dense.dense_loss(net, x, y, weight=weight, context=context)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()), count + 1
        if step in eval_at:
            history["step"].append(float(step))
            history["train_loss"].append(total / max(count, 1))
            total, count = 0.0, 0
            if val_batch is not None:
                val_loss = cnn_dense._val_loss(net, val_batch, weight, torch.device("cpu"),
                                               per_step)
                history["val_loss"].append(val_loss)
                if val_loss < best[0] - 1e-7:
                    best = (val_loss, copy.deepcopy(net.state_dict()), len(history["step"]) - 1)
                net.train()
    if best[1] is not None:
        net.load_state_dict(best[1])
    model.net_ = net.eval()
    model.history_ = history
    model.best_epoch_ = best[2] if best[1] is not None else len(history["step"]) - 1
    model.n_epochs_ = len(history["step"])
    model.n_steps_ = n_steps


def _old_fit_net(net, train_loader, val_loader, config, augment):
    """``train_torch.fit_net`` before the one loop (one CPU process): its records without
    ``seconds``, best epoch, stop reason and steps."""
    monitor = config.monitor if val_loader is not None else "train_loss"
    mode = {"val_dice": "max", "val_loss": "min", "train_loss": "min"}[monitor]
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = make_ema(net, config.ema_decay) if config.ema_decay is not None else None
    aug_gen = torch.Generator().manual_seed(int(config.random_state) + 1)
    records, best_epoch, best_value, best_state, since_best, steps = [], None, None, None, 0, 0
    stopped = "max_epochs"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.random_state))
        for epoch in range(1, (config.max_epochs or 10**9) + 1):
            net.train()
            losses, n_seen, out_of_steps = 0.0, 0, False
            n_batches = max(len(train_loader), 1)
            for b, batch in enumerate(train_loader):
                rate = lr_at(_progress(epoch - 1 + (b + 1) / n_batches, config.max_epochs, 0.0,
                                       None, steps + 1, config.max_steps),
                             lr=config.lr, warmup_fraction=config.warmup_fraction,
                             scheduler=config.scheduler)
                for group in opt.param_groups:
                    group["lr"] = rate
                xb, yb = batch[0], batch[1]
                if augment is not None:
                    xb, yb = augment(xb, yb, aug_gen, None)
                opt.zero_grad(set_to_none=True)
                loss = segmentation_loss(net(xb), yb, loss=config.loss,
                                         pixel_weight=config.bce_weight,
                                         focal_gamma=config.focal_gamma)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                opt.step()
                if ema is not None:
                    ema.update_parameters(net)
                steps += 1
                losses += float(loss.detach()) * xb.shape[0]
                n_seen += xb.shape[0]
                if config.max_steps is not None and steps >= config.max_steps:
                    out_of_steps = True
                    break
            record = {"epoch": epoch, "train_loss": losses / max(n_seen, 1),
                      "lr": float(opt.param_groups[0]["lr"]), "n_seen": n_seen, "step": steps}
            scored = ema.module if ema is not None else net
            if val_loader is not None:
                ev = evaluate_net(scored, val_loader, device=torch.device("cpu"), amp=False,
                                  bce_weight=config.bce_weight, loss=config.loss,
                                  focal_gamma=config.focal_gamma)
                record.update(val_loss=ev["loss"], val_dice=ev["dice"],
                              val_dice_per_class=ev["dice_per_class"])
            records.append(record)
            value = float(record[monitor])
            if _better(value, best_value, mode):
                best_epoch, best_value, since_best = epoch, value, 0
                best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
            else:
                since_best += 1
            if out_of_steps:
                stopped = "max_steps"
                break
            if config.patience is not None and since_best >= config.patience:
                stopped = "patience"
                break
    net.load_state_dict(best_state)
    net.eval()
    return records, best_epoch, stopped, steps


# ----------------------------------------------------------------------------- block CNN
def _blocks(n, seed):
    gen = np.random.default_rng(seed)
    y = gen.integers(0, 3, n)
    return gen.normal(0, 1, (n, BS * BS)).astype(np.float32) + y[:, None] * 0.7, y


def _slices(n, seed, shape=(30, 28)):
    gen = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros(shape, np.int64)
        r, c = gen.integers(8, shape[0] - 8), gen.integers(8, shape[1] - 8)
        lab[r - 5 : r + 5, c - 6 : c + 4] = 1
        lab[r - 2 : r + 2, c + 4 : c + 8] = 2
        images.append(gen.normal(0, 0.3, shape).astype(np.float32) + lab * 0.8)
        labels.append(lab)
    return images, labels


SMALL = {"channels": (4, 8), "hidden": 8, "device": "cpu", "amp": False, "random_state": 0}


def _both(monkeypatch, module, name, oracle, fit):
    """``fit()`` with the one loop, then with ``oracle`` in place of ``module.name``."""
    new = fit()
    monkeypatch.setattr(module, name, oracle)
    return new, fit()


def _same_model(new, old) -> None:
    _same_weights(new.net_, old.net_)
    assert new.history_ == old.history_
    assert (new.best_epoch_, new.n_epochs_, new.n_steps_) == (
        old.best_epoch_, old.n_epochs_, old.n_steps_)


@pytest.mark.parametrize("params", [
    # held-out split (Rows), intensity augmentation, early stopping on a better epoch
    {"max_epochs": 6, "batch_size": 16, "early_stopping_patience": 1, "lr": 0.05,
     "intensity_augment": True},
    # no validation (the last epoch is kept), no augmentation, a lone last sample skipped
    {"max_epochs": 2, "batch_size": 17, "validation_fraction": 0.0, "class_weight": None,
     "augment": False, "centre_features": True},
])
def test_sampled_blocks_train_as_their_own_loop_did(monkeypatch, params):
    X, y = _blocks(120, 1)
    new, old = _both(monkeypatch, cnn_classifier, "train_blocks", _old_train_blocks,
                     lambda: BlockCNNClassifier(BS, **SMALL, **params).fit(X, y))
    _same_model(new, old)
    assert new.n_epochs_ >= 2


@pytest.mark.parametrize("params", [
    # blocks on the fly (1x1 crops), rotation, steps with no counted centre skipped
    {"max_steps": 12, "crop_size": 1, "crops_per_step": 8, "foreground_fraction": 0.0,
     "background_fraction": 0.05, "max_rotation": 15.0, "max_scale": 0.1, "lr": 0.01},
    # crops with context features, an epoch budget, a held-out best point restored
    {"max_epochs": 3, "crop_size": 6, "crops_per_step": 2, "context_features": True,
     "background_fraction": 0.5, "intensity_augment": True, "lr": 0.02},
    # no validation slices
    {"max_steps": 7, "crop_size": 4, "crops_per_step": 3, "validation_fraction": 0.0},
])
def test_dense_training_trains_as_its_own_loop_did(monkeypatch, params):
    images, labels = _slices(8, 4)
    runs = []

    def spy(*args, **kwargs):
        runs.append(run_training(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(cnn_dense, "run_training", spy)
    new, old = _both(monkeypatch, cnn_dense, "train_dense", _old_train_dense,
                     lambda: BlockCNNClassifier(BS, **SMALL, **params).fit_dense(images, labels))
    _same_model(new, old)
    assert new.history_["step"][-1] == new.n_steps_
    if params.get("background_fraction") == 0.05:  # some steps had no centre to learn
        assert sum(r["n_seen"] for r in runs[0].epochs) < new.n_steps_


# ----------------------------------------------------------------------------- fit_net
def _unet_data(seed=0):
    gen = np.random.default_rng(seed)
    y = np.zeros((8, 2, 16, 16), np.float32)
    y[:, 0, 4:10, 3:9] = 1
    y[:, 1, 9:14, 8:14] = 1
    x = (gen.normal(0, 0.3, (8, 3, 16, 16)) + y[:, :1] + 0.5 * y[:, 1:]).astype(np.float32)
    return x, y


def _unet(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(3, 2, base_channels=4, depth=2, dropout=0.1)


def _flip(xb, yb, gen, sizes):
    return augment_batch(xb, yb, gen, sizes=sizes, hflip=0.5, rotate=10.0, scale=0.1,
                         shift=0.0, gamma=0.1, brightness=0.1, contrast=0.1, noise=0.05)


@pytest.mark.parametrize(("overrides", "with_val", "augment"), [
    ({"max_epochs": None, "max_steps": 5, "ema_decay": 0.9, "warmup_fraction": 0.2}, True, True),
    ({"max_epochs": 4, "patience": 1, "monitor": "val_loss", "grad_clip": 0.5}, True, False),
    ({"max_epochs": 2, "loss": "focal_dice"}, False, True),
])
def test_fit_net_trains_as_its_own_loop_did(overrides, with_val, augment):
    x, y = _unet_data()
    config = TrainConfig(device="cpu", progress=False, lr=1e-2, random_state=3, **overrides)

    def loaders():
        return (make_loader(x, y, batch_size=3, shuffle=True, random_state=1),
                make_loader(x, y, batch_size=4, shuffle=False) if with_val else None)

    new_net, old_net = _unet(), _unet()
    history = fit_net(new_net, *loaders(), config=config, augment=_flip if augment else None)
    records, best_epoch, stopped, steps = _old_fit_net(old_net, *loaders(), config,
                                                       _flip if augment else None)
    _same_weights(new_net, old_net)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in history.epochs] == records
    assert (history.best_epoch, history.stopped, history.steps) == (best_epoch, stopped, steps)


# ----------------------------------------------------------------------------- the loop
def _linear_run(batches, step_loss=None, **kw):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    start = copy.deepcopy(net.state_dict())

    def loss(model, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y), len(x)

    history = run_training(net, batches, step_loss or loss, device=torch.device("cpu"),
                           lr=0.1, **kw)
    return net, start, history


def _linear_batches(n=3):
    gen = torch.Generator().manual_seed(0)
    data = [(torch.randn(4, 3, generator=gen), torch.randn(4, 1, generator=gen))
            for _ in range(n)]
    return lambda epoch: list(data)


def test_a_skipped_step_counts_towards_the_budget_but_changes_nothing():
    net, start, h = _linear_run(_linear_batches(), step_loss=lambda model, batch: None,
                                max_steps=5)
    _same_weights(net, _load(start))
    assert h.steps == 5 and h.stopped == "max_steps"
    assert [(r["step"], r["n_seen"], r["train_loss"]) for r in h.epochs] == [
        (3, 0, 0.0), (5, 0, 0.0)]


def _load(state):
    net = torch.nn.Linear(3, 1)
    net.load_state_dict(state)
    return net


def test_without_a_monitor_the_last_weights_stay_and_patience_does_not_apply():
    net, _, h = _linear_run(_linear_batches(), max_epochs=3, patience=1,
                            evaluate=lambda net: {"val_loss": 1.0})
    assert h.best_epoch is None and h.stopped == "max_epochs" and len(h.epochs) == 3
    assert [r["val_loss"] for r in h.epochs] == [1.0, 1.0, 1.0]


def test_the_monitor_restores_the_best_epoch_and_patience_stops():
    values = iter([3.0, 1.0, 2.0, 2.5, 0.5])
    kept = {}

    def evaluate(net):
        kept[len(kept) + 1] = copy.deepcopy(net.state_dict())
        return {"val_loss": next(values)}

    net, _, h = _linear_run(_linear_batches(), max_epochs=5, patience=2, evaluate=evaluate,
                            monitor="val_loss", better=lambda v, b: b is None or v < b)
    assert h.best_epoch == 2 and h.best_value == 1.0 and h.stopped == "patience"
    assert len(h.epochs) == 4
    _same_weights(net, _load(kept[2]))


def test_the_schedule_follows_the_step_budget():
    rates = []

    def schedule(progress):
        rates.append(progress)
        return 0.1

    _linear_run(_linear_batches(4), max_steps=8, schedule=schedule)
    assert rates == [k / 8 for k in range(1, 9)]


@pytest.mark.parametrize("kind", [*PROGRESS, None])
def test_progress_displays(kind, capsys):
    _, _, h = _linear_run(_linear_batches(), max_epochs=2, progress=kind,
                          evaluate=lambda net: {"val_loss": 1.0, "val_dice": 0.5})
    assert len(h.epochs) == 2
    if kind == "batches":
        assert "epoch 2: train_loss" in capsys.readouterr().out


def test_a_bad_progress_kind_is_refused():
    with pytest.raises(ValueError, match="progress"):
        _linear_run(_linear_batches(), max_epochs=1, progress="bars")
