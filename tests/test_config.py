from pathlib import Path

import pytest

from gitract.config import ExperimentConfig, config_from_dict, load_config


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: t\nseed: 3\ndata: {kind: phantom, phantom: {n_cases: 2}}\n"
        "tracks:\n  - {name: rf-33, kind: blocks, params: {classifier: rf, block_size: 33}}\n"
    )
    cfg = load_config(path, overrides={"seed": 5})
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.seed == 5 and cfg.data.phantom == {"n_cases": 2}
    assert cfg.tracks[0].params["block_size"] == 33
    assert cfg.split.n_folds == 1  # untouched default


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"sed": 1}, "sed"),
        ({"data": {"knd": "x"}}, "knd"),
        ({"tracks": [{"name": "a", "kind": "blocks", "parms": {}}]}, "parms"),
    ],
)
def test_unknown_keys_are_named(raw, key):
    with pytest.raises((ValueError, TypeError), match=key):
        config_from_dict(raw)


def test_bad_track_kind_and_duplicates():
    with pytest.raises(ValueError, match="kind must be"):
        config_from_dict({"tracks": [{"name": "a", "kind": "svm"}]})
    with pytest.raises(ValueError, match="duplicate track"):
        config_from_dict({"tracks": [{"name": "a", "kind": "unet"}, {"name": "a", "kind": "unet"}]})


CONFIGS = sorted((Path(__file__).resolve().parent.parent / "experiments" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    """Every shipped config parses and every track's parameters are accepted by its track."""
    from gitract.evaluation import BlockTrackConfig
    from gitract.models.unet import UNetConfig

    cfg = load_config(path)
    assert cfg.tracks
    for track in cfg.tracks:
        if track.kind == "unet":
            UNetConfig.from_dict(track.params)
        else:
            params = dict(track.params)
            if track.kind == "cnn":
                params = {"classifier": "cnn", "features": "raw", **params}
            BlockTrackConfig.from_dict(params)
