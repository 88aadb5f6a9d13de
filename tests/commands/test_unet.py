"""``gitract unet train|predict``: a training run through the engine, and its flags."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

pytest.importorskip("torch")

from gitract.cli import main  # noqa: E402
from gitract.commands import unet  # noqa: E402


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    unet.configure_parser(parser)
    return parser.parse_args(["train", "--data", "phantom", *argv])


def test_train_flags_map_onto_the_track_parameters():
    params = unet.track_params(_args(["--steps", "30", "--image-size", "64", "--threads", "1"]))
    # Only the flags given (the settings own every default); a step budget alone: no
    # epoch limit.
    assert params == {"max_steps": 30, "image_size": 64, "num_threads": 1, "max_epochs": None}
    assert unet.track_params(_args(["--device", "cpu"]))["device"] == "cpu"
    gpu = unet.track_params(_args(["--gpu-config", "--image-size", "64", "--epochs", "2"]))
    from dataclasses import replace

    from gitract.models.unet import GPU_CONFIG, UNetConfig

    # The GPU config's settings, then the flags (which win).
    assert UNetConfig.from_dict(gpu) == replace(GPU_CONFIG, image_size=64, max_epochs=2)


@pytest.mark.parametrize("architecture", ["unet", "unetpp", "deeplabv3plus"])
def test_architecture_flag_sets_the_track_kind(architecture, monkeypatch):
    seen = {}
    monkeypatch.setattr(unet, "run_track", lambda args, config: seen.update(config=config)
                        or ("out", {}))
    monkeypatch.setattr(unet, "print_training", lambda *a: None)
    assert unet.run(_args(["--architecture", architecture, "--steps", "3"])) == 0
    assert [(t.name, t.kind) for t in seen["config"].tracks] == [("unet", architecture)]
    with pytest.raises(SystemExit):
        _args(["--architecture", "segnet"])


def test_cli_train_then_predict(tmp_path):
    from gitract.data.kaggle import read_kaggle_dataset
    from gitract.data.phantom import PhantomConfig, write_phantom

    data = write_phantom(tmp_path / "ph", PhantomConfig(n_cases=2, n_days=1, n_slices=4,
                                                         sizes=((64, 64),)))
    run = tmp_path / "run"
    assert main(["unet", "train", "--data", "kaggle", "--path", str(data), "--out", str(run),
                 "--epochs", "1", "--device", "cpu", "--image-size", "32",
                 "--base-channels", "4", "--depth", "2", "--threads", "1",
                 "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    params = config["tracks"][0]["params"]
    assert config["tracks"][0]["kind"] == "unet"
    assert params["image_size"] == 32 and params["max_epochs"] == 1
    assert (run / "steps" / "fold0" / "unet" / "model" / "unet.pt").is_file()
    summary = json.loads((run / "summary.json").read_text())
    fold = summary["tracks"]["unet"]["folds"][0]
    assert fold["tuning"]["keys"] and len(fold["tuning"]["thresholds"]) == 3  # tuned on val
    assert fold["training"]["epochs"] == 1
    out = tmp_path / "sub.csv"
    # The old command is an alias of gitract predict (scans folder: test by default, as
    # every predict command; the phantom has train/ only).
    assert main(["unet", "predict", str(run), "--data-dir", str(data), "--out", str(out),
                 "--images-subdir", "train", "--threads", "1", "--device", "cpu"]) == 0
    sub = pd.read_csv(out, keep_default_na=False)
    assert list(sub.columns) == ["id", "class", "predicted"]
    n = sum(s.n_slices for s in read_kaggle_dataset(data))
    assert len(sub) == 3 * n
