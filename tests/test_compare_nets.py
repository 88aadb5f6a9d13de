"""A tiny phantom comparison with the U-Net++ and DeepLabV3+ tracks, end to end: trained,
tuned, scored, reported with their curves, and predicted again from the saved models."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

pytest.importorskip("torch")

from gitract.compare import run_comparison  # noqa: E402
from gitract.config import config_from_dict  # noqa: E402

NET = {"image_size": 32, "base_channels": 4, "depth": 2, "batch_size": 4, "max_steps": 3,
       "max_epochs": None, "num_threads": 1}
RAW = {
    "name": "nets",
    "seed": 0,
    "data": {"kind": "phantom",
             "phantom": {"n_cases": 3, "n_days": 1, "n_slices": 6, "sizes": [[64, 64]]}},
    "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "val_fraction": 0.5},
    "report": {"n_example_slices": 1},
    "tracks": [{"name": "unet", "kind": "unet", "params": NET},
               {"name": "unetpp", "kind": "unetpp", "params": NET},
               {"name": "deeplab", "kind": "deeplabv3plus", "params": NET}],
}


@pytest.fixture(scope="module")
def nets_run(tmp_path_factory):
    old = os.environ.get("GITRACT_CACHE")
    os.environ["GITRACT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        config = config_from_dict(RAW)
        out = tmp_path_factory.mktemp("run") / "nets"
        run_comparison(config, out, progress=False)
        yield config, out
    finally:
        if old is None:
            del os.environ["GITRACT_CACHE"]
        else:
            os.environ["GITRACT_CACHE"] = old


def test_report_names_the_new_tracks_as_deep_tracks(nets_run):
    _, out = nets_run
    summary = json.loads((out / "summary.json").read_text())
    assert {n: t["kind"] for n, t in summary["tracks"].items()} == {
        "unet": "unet", "unetpp": "unetpp", "deeplab": "deeplabv3plus"}
    for track in summary["tracks"].values():
        assert track["folds"][0]["training"]["steps"] == 3
    text = (out / "report.md").read_text()
    assert "| unetpp | unetpp |" in text and "| deeplab | deeplabv3plus |" in text
    # Each network is its own family in the written summary, and a deep track with a
    # learning curve (the Converged column, the training section).
    assert "U-Net++ (unetpp, " in text and "DeepLabV3+ (deeplab, " in text
    assert "representative: each family's track with the highest validation score" in text
    table = next(line for line in text.splitlines() if line.startswith("| track | Dice"))
    assert "Converged" in table
    training = text.split("## Training of the deep tracks", 1)[1]
    assert "unetpp" in training and "deeplab" in training
    curves = pd.read_csv(out / "training.csv")
    assert set(curves["model"]) == {"unet", "unetpp", "deeplab"}


def test_saved_tracks_reload_as_their_architecture(nets_run):
    from gitract.tracks import make_track
    from gitract.models.nets import DeepLabV3Plus, UNetPlusPlus

    config, out = nets_run
    for track, cls in ((config.tracks[1], UNetPlusPlus), (config.tracks[2], DeepLabV3Plus)):
        adapter = make_track(track.kind, track.params, random_state=0).load(
            out / "steps" / "fold0" / track.name / "model", device="cpu")
        assert type(adapter.model_.net_) is cls
        assert adapter.model_.config.architecture == track.kind
    with pytest.raises(ValueError, match="a track of kind unetpp has architecture"):
        make_track("unetpp", {"architecture": "unet"}, random_state=0)
