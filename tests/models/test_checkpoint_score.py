"""The segmentation nets choose their checkpoint on the validation competition score.

Pinned: :class:`VolumeScore` rebuilds each validation case-day from the loader's batches
(padding cropped, slices at their numbers) and gives the score that
:func:`gitract.metrics.score_stacks` gives the same volumes; ``fit_net`` records
``val_score`` each epoch and restores the epoch where it is highest, which is not the
epoch of the best pooled Dice when a stray component costs the Hausdorff term; the
segmentation kinds state the rule in the model key, the block kinds do not (their cached
models stay valid).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.data.record import SliceStack  # noqa: E402
from gitract.metrics import MetricConventions, score_stacks  # noqa: E402
from gitract.models.train_torch import (  # noqa: E402
    TrainConfig,
    ValVolume,
    VolumeScore,
    evaluate_net,
    fit_net,
    make_loader,
    run_training,
)
from gitract.models.unet import UNetSegmenter  # noqa: E402
from gitract.tracks import model_rules  # noqa: E402

CLASSES = ("large_bowel", "small_bowel", "stomach")


def _volumes(seed=0):
    """Two case-days (3 slices at numbers 4, 5, 9 and 2 slices at 1, 2), 3 classes."""
    gen = np.random.default_rng(seed)
    truth = np.zeros((5, 3, 12, 12), bool)
    truth[:, 0, 2:6, 2:6] = True
    truth[:3, 2, 7:10, 6:11] = True
    pred = truth.copy()
    pred[1, 0, 3:7, 2:6] = True                      # a shifted organ
    pred[4, 1, 10:12, 0:2] = True                    # a stray component: one side empty
    pred[0, 2] = gen.random((12, 12)) > 0.7          # a noisy slice
    return truth, pred, [ValVolume("case1_day0", (4, 5, 9)), ValVolume("case2_day0", (1, 2))]


def _reference(truth, pred, volumes) -> float:
    stacks, preds, start = [], {}, 0
    for v in volumes:
        n = len(v.slice_numbers)
        t = np.moveaxis(truth[start:start + n], 1, -1)
        stacks.append(SliceStack(
            image=np.zeros(t.shape[:3], np.float32), masks=t, classes=CLASSES,
            spacing=(1.0, 1.0), ids=tuple(f"{v.key}_{s}" for s in v.slice_numbers),
            case=v.key.split("_")[0], day=v.key.split("_")[1],
            slice_numbers=v.slice_numbers))
        preds[v.key] = np.moveaxis(pred[start:start + n], 1, -1)
        start += n
    return score_stacks(stacks, preds, conventions=MetricConventions()).score


def test_the_volume_score_equals_the_metric_on_whole_volumes_fed_in_padded_batches():
    truth, pred, volumes = _volumes()
    vs = VolumeScore(volumes, CLASSES)
    # Batches of 2 cut across the two volumes; each item padded to 16 x 16.
    pad = ((0, 0), (0, 0), (0, 4), (0, 4))
    for i in range(0, 5, 2):
        sizes = np.array([[12, 12]] * len(truth[i:i + 2]))
        vs.add(np.pad(pred[i:i + 2], pad), np.pad(truth[i:i + 2], pad), sizes)
    expected = _reference(truth, pred, volumes)
    assert VolumeScore.score(vs.sums()) == pytest.approx(expected, abs=1e-12)
    assert expected < 0.95  # the stray and shifted components cost something


def test_an_incomplete_volume_is_an_error_not_a_score():
    truth, pred, volumes = _volumes()
    vs = VolumeScore(volumes, CLASSES)
    vs.add(pred[:4], truth[:4])
    with pytest.raises(ValueError, match="1 of 2 validation volumes"):
        vs.sums()
    with pytest.raises(ValueError, match="more slices"):
        vs.add(pred, truth)


class _Fixed(torch.nn.Module):
    """A 'net' whose logits are a stored set of hard predictions (switched per epoch)."""

    def __init__(self, preds):
        super().__init__()
        self.preds, self.epoch = preds, 0
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        idx = x[:, 0, 0, 0].long()
        out = torch.as_tensor(self.preds[self.epoch], dtype=torch.float32)[idx]
        return (out * 2 - 1) * 20 + self.w * 0


def test_the_checkpoint_is_the_epoch_of_the_best_validation_score_not_of_the_best_dice():
    truth, _, volumes = _volumes()
    # Epoch 1: every organ exact plus a small stray blob far from the organ on one slice
    # (pooled Dice 0.97, a large Hausdorff distance on that case-day); epoch 2: every
    # organ one pixel row smaller (pooled Dice 0.93, Hausdorff distances of one pixel).
    stray = truth.copy()
    stray[4, 0, 9:12, 9:12] = True
    shrunk = truth.copy()
    shrunk[:, :, 2, :] = False
    x = np.zeros((5, 1, 12, 12), np.float32)
    x[:, 0, 0, 0] = np.arange(5)
    net = _Fixed([stray, shrunk])
    vs = VolumeScore(volumes, CLASSES)
    loader = make_loader(x, truth.astype(np.float32), batch_size=2, shuffle=False)
    records = []

    def evaluate(model):
        ev = evaluate_net(model, loader, volumes=vs)
        records.append(ev)
        model.epoch = min(model.epoch + 1, 1)
        return {"val_dice": ev["dice"], "val_score": ev["score"]}

    def step_loss(model, batch):
        return model.w * 0.0 + 1.0, 1

    history = run_training(net, lambda e: [0], step_loss, device=torch.device("cpu"), lr=0.0,
                           max_epochs=2, evaluate=evaluate, monitor="val_score",
                           better=lambda v, b: b is None or v > b)
    by_dice = 1 + int(np.argmax([r["dice"] for r in records]))
    by_score = 1 + int(np.argmax([r["score"] for r in records]))
    assert (by_dice, by_score) == (1, 2)
    assert history.best_epoch == 2


def test_fit_net_records_the_validation_score_and_needs_the_volumes_for_it():
    gen = np.random.default_rng(0)
    y = np.zeros((5, 3, 16, 16), np.float32)
    y[:, 0, 4:10, 3:9] = 1
    x = (gen.normal(0, 0.3, (5, 1, 16, 16)) + y[:, :1]).astype(np.float32)
    _, _, volumes = _volumes()
    from gitract.models.nets import UNet

    config = TrainConfig(device="cpu", progress=False, max_epochs=2, monitor="val_score")
    train, val = (make_loader(x, y, batch_size=2, shuffle=True),
                  make_loader(x, y, batch_size=2, shuffle=False))
    with pytest.raises(ValueError, match="val_volumes"):
        fit_net(UNet(1, 3, base_channels=4, depth=2), train, val, config=config)
    history = fit_net(UNet(1, 3, base_channels=4, depth=2), train, val, config=config,
                      val_volumes=VolumeScore(volumes, CLASSES))
    scores = [e["val_score"] for e in history.epochs]
    assert all(math.isfinite(s) for s in scores) and history.monitor == "val_score"
    assert history.best_value == max(scores)


def test_the_segmentation_nets_default_to_the_score_and_state_it_in_the_model_key():
    assert UNetSegmenter().config.monitor == "val_score"
    for kind in ("unet", "unetpp", "deeplabv3plus"):
        assert "validation competition score" in model_rules(kind)
    for kind in ("blocks", "cnn"):
        assert model_rules(kind) is None


def test_the_training_section_says_on_what_the_checkpoint_was_chosen():
    from gitract.compare._report_training import training_lines

    fold = {"training": {"budget": {"max_steps": 10}, "epochs": 5, "steps": 10,
                         "stopped": "max_steps", "best_epoch": 3, "monitor": "val_score"}}
    lines = training_lines({"tracks": {"unet": {"folds": [fold]}}})
    assert lines[0].endswith("weights of epoch 3 kept (the highest validation competition "
                             "score).")
    fold["training"].pop("monitor")  # a model saved before the rule was recorded
    assert training_lines({"tracks": {"unet": {"folds": [fold]}}})[0].endswith(
        "weights of epoch 3 kept.")
