"""The volume steps after the thresholds on hand-made volumes: the empty-slice gate, the
z-range, 3D components, their tuning on validation sums, and their config keys."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gitract.config import config_from_dict
from gitract.data.record import SliceStack
from gitract.metrics import MetricConventions
from gitract.postprocessing import (
    ClassPostprocess,
    Postprocess,
    PostprocessChoice,
    ThresholdTuning,
    class_positions,
    combine_positions,
    drop_small_components_3d,
    postprocess_from_statistics,
    postprocess_statistics,
    relative_positions,
    slice_evidence,
    slice_keep,
)
from gitract.tracks import PostprocessSettings

CLASSES = ("large_bowel", "small_bowel", "stomach")


def _stack(masks, numbers=None):
    n = masks.shape[0]
    numbers = tuple(range(1, n + 1)) if numbers is None else tuple(numbers)
    return SliceStack(image=np.zeros(masks.shape[:3], np.float32), masks=masks,
                      classes=CLASSES[:masks.shape[-1]], spacing=(1.0, 1.0),
                      ids=tuple(f"case1_day1_slice_{k:04d}" for k in numbers), case="case1",
                      day="day1", slice_numbers=numbers)


def test_a_stray_component_is_removed_and_the_organ_kept():
    mask = np.zeros((10, 20, 20), bool)
    mask[2:8, 5:12, 5:12] = True          # the organ: 6 slices of 7x7
    mask[9, 17:19, 17:19] = True          # a stray: 4 voxels, far away
    out = drop_small_components_3d(mask, range(10), 0.05)
    assert out[2:8, 5:12, 5:12].all() and not out[9].any()
    # Off: nothing changes; keep-largest (1.0) keeps the organ only.
    assert (drop_small_components_3d(mask, range(10), 0.0) == mask).all()
    assert int(drop_small_components_3d(mask, range(10), 1.0).sum()) == 6 * 49


def test_components_follow_the_true_slice_numbers():
    mask = np.zeros((4, 8, 8), bool)
    mask[:2, 2:5, 2:5] = True             # slices 1, 3 (every 2nd slice: neighbours)
    mask[2:, 2:4, 2:4] = True             # slices 9, 11: a gap, so another component
    far = drop_small_components_3d(mask, [1, 3, 9, 11], 1.0)
    assert far[:2].any() and not far[2:].any()
    near = drop_small_components_3d(mask, [1, 3, 5, 7], 1.0)
    assert (near == mask).all()           # one component when the slices are adjacent


def test_the_gate_drops_a_slice_whose_evidence_is_weak():
    proba = np.zeros((3, 10, 10))
    proba[0, 2:6, 2:6] = 0.95             # confident organ
    proba[1, 4, 4] = 0.55                 # a faint blip over the threshold
    proba[2, 1:9, 1:9] = 0.65             # wide but unsure
    mask = proba > 0.5
    evidence = slice_evidence(proba, mask)
    keep = slice_keep(evidence, None, gate_cut=0.6, gate_area=0.0, z_margin=math.inf,
                      z_range=None)
    assert keep.tolist() == [True, False, True]
    keep = slice_keep(evidence, None, gate_cut=0.9, gate_area=0.0, z_margin=math.inf,
                      z_range=None)
    assert keep.tolist() == [True, False, False]
    keep = slice_keep(evidence, None, gate_cut=0.0, gate_area=0.05, z_margin=math.inf,
                      z_range=None)
    assert keep.tolist() == [True, False, True]   # 1 pixel of 100 < 5 %
    assert slice_keep(evidence, None, gate_cut=0.0, gate_area=0.0, z_margin=math.inf,
                      z_range=None).all()


def test_the_z_range_comes_from_training_stacks_and_drops_slices_outside():
    train = np.zeros((11, 6, 6, 1), bool)
    train[3:8, 2:4, 2:4, 0] = True        # present at relative positions 0.3 .. 0.7
    ranges = combine_positions([class_positions(_stack(train))], CLASSES[:1])
    assert ranges["large_bowel"] == pytest.approx((0.3, 0.7))
    positions = relative_positions(list(range(11)), 11)
    evidence = (np.ones(11), np.ones(11))
    keep = slice_keep(evidence, positions, gate_cut=0, gate_area=0, z_margin=0.15,
                      z_range=ranges["large_bowel"])
    assert np.flatnonzero(keep).tolist() == [2, 3, 4, 5, 6, 7, 8]
    # Off (inf), unknown range, or a stack of one slice number: nothing dropped.
    assert slice_keep(evidence, positions, gate_cut=0, gate_area=0, z_margin=math.inf,
                      z_range=(0.3, 0.7)).all()
    assert slice_keep(evidence, None, gate_cut=0, gate_area=0, z_margin=0.0,
                      z_range=(0.3, 0.7)).all()
    assert relative_positions([5], 1) is None
    empty = np.zeros((4, 6, 6, 1), bool)
    assert combine_positions([class_positions(_stack(empty))], CLASSES[:1]) == {
        "large_bowel": None}


def test_a_choice_applies_in_order_and_round_trips():
    proba = np.zeros((6, 12, 12, 1))
    proba[1:4, 3:8, 3:8, 0] = 0.9
    proba[5, 10, 10, 0] = 0.7             # outside the z-range and a stray
    choice = PostprocessChoice(CLASSES[:1], (ClassPostprocess(
        gate_cut=0.0, z_margin=0.0, component_fraction=0.0, z_range=(0.0, 0.7)),))
    stage = Postprocess(ThresholdTuning.fixed(CLASSES[:1], 0.5), choice)
    masks = stage.apply(proba, range(6))
    assert masks[1:4].any() and not masks[5].any()
    again = PostprocessChoice.from_dict(choice.to_dict(), CLASSES[:1])
    assert again == choice
    assert PostprocessChoice.from_dict(None, CLASSES[:1]) == PostprocessChoice.off(CLASSES[:1])


def test_tuning_on_validation_sums_removes_strays_and_keeps_a_clean_class_untouched():
    truth = np.zeros((8, 16, 16, 2), bool)
    truth[2:6, 4:10, 4:10, 0] = True
    truth[2:6, 4:10, 4:10, 1] = True
    proba = truth.astype(float) * 0.9
    proba[7, 14:16, 14:16, 0] = 0.7       # a stray on an organ-free slice, class 0 only
    stack = _stack(truth)
    masks = proba > 0.5
    stats = postprocess_statistics(proba, masks, stack,
                                   candidates=PostprocessSettings().candidates(),
                                   z_ranges={"large_bowel": None, "small_bowel": None},
                                   conventions=MetricConventions())
    # Sums over two scans choose the same as over one (they add up).
    choice, table = postprocess_from_statistics(stats, CLASSES[:2], {})
    twice, _ = postprocess_from_statistics(pd.concat([stats, stats]), CLASSES[:2], {})
    assert twice == choice
    cleaned = choice.apply(masks, proba, stack.slice_numbers)
    assert not cleaned[7, ..., 0].any() and (cleaned[..., 0] == truth[..., 0]).all()
    # Nothing to gain on the clean class: no gate, no component step, its mask untouched
    # (ties go to the z-range on, a no-op here since no range is known).
    clean = choice.steps[1]
    assert (clean.gate_cut, clean.gate_area, clean.component_fraction) == (0, 0, 0)
    assert (cleaned[..., 1] == masks[..., 1]).all()
    chosen = table[table["chosen"]].set_index("class")["score"]
    assert chosen["large_bowel"] == pytest.approx(1.0)


def test_postprocess_keys_are_checked_in_one_line():
    def track(post):
        return {"tracks": [{"name": "rf", "kind": "blocks",
                            "params": {"classifier": "rf", "postprocess": post}}]}

    config = config_from_dict(track({"gate": False, "z_margins": [0.0, 0.2]}))
    settings = config.tracks[0].tuning.postprocess
    assert settings.gate is False and settings.z_margins == (0.0, 0.2)
    assert settings.candidates()["gate_cut"] == [0.0]
    assert config.tracks[0].tuning.options([0])["postprocess"]["z_margins"] == [0.0, 0.2]
    with pytest.raises(ValueError, match=r"tracks\[0\]\.params\.postprocess\.gat: unknown "
                                         r"key \(did you mean gate\?\)"):
        config_from_dict(track({"gat": True}))
    with pytest.raises(ValueError, match=r"tracks\[0\]\.params\.postprocess\.z_margins: must "
                                         r"be in \[0, 1\]"):
        config_from_dict(track({"z_margins": [2.0]}))
    with pytest.raises(ValueError, match=r"postprocess\.threshold_shifts: must be in "
                                         r"\[-0\.5, 0\.5\]"):
        config_from_dict(track({"threshold_shifts": [-0.7]}))
    with pytest.raises(ValueError, match=r"tracks\[0\]\.params\.postprocess\.components: "
                                         r"expected"):
        config_from_dict(track({"components": "yes"}))


def test_a_threshold_moved_with_the_steps_stays_in_the_sweep_range():
    from gitract.postprocessing import chosen_thresholds, shift_threshold

    assert shift_threshold(0.5, -0.2) == pytest.approx(0.3)
    assert shift_threshold(0.1, -0.2) == pytest.approx(0.05)   # not below the sweep's lowest
    assert shift_threshold(0.03, -0.1) == pytest.approx(0.03)  # a lower one stays
    assert shift_threshold(0.9, 0.2) == pytest.approx(0.95)
    table = pd.DataFrame({"class": ["a", "a", "b"], "threshold_shift": [0.0, -0.1, -0.2],
                          "chosen": [False, True, True]})
    assert chosen_thresholds(table, [0.5, 0.6], ["a", "b"]) == pytest.approx((0.4, 0.4))
    assert chosen_thresholds(table.iloc[:0], [0.5, 0.6], ["a", "b"]) == (0.5, 0.6)
