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
    with pytest.raises(ValueError, match=r"tracks\[0\]\.kind: must be one of"):
        config_from_dict({"tracks": [{"name": "a", "kind": "svm"}]})
    with pytest.raises(ValueError, match="duplicate track"):
        config_from_dict({"tracks": [{"name": "a", "kind": "unet"}, {"name": "a", "kind": "unet"}]})


CONFIGS = sorted((Path(__file__).resolve().parent.parent / "experiments" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    """Every shipped config parses and every track's parameters are accepted by its track."""
    from gitract.tracks import TuningSettings, track_kind

    cfg = load_config(path)
    assert cfg.tracks
    for track in cfg.tracks:
        # Parsed once, with the config: the kind's own settings object and the sweep's.
        assert isinstance(track.settings, track_kind(track.kind).settings)
        assert isinstance(track.tuning, TuningSettings)


# ------------------------------------------------------------- every field checked, named
BASE = {"name": "t", "data": {"kind": "phantom"},
        "tracks": [{"name": "rf", "kind": "blocks", "params": {"classifier": "rf"}},
                   {"name": "lgbm", "kind": "blocks", "params": {"classifier": "lightgbm"}},
                   {"name": "unet", "kind": "unet", "params": {"image_size": 64}}]}


def _with(path: str, value):
    """BASE with ``value`` at a dotted ``path`` (``tracks.1.params.x``)."""
    import copy

    raw = copy.deepcopy(BASE)
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


@pytest.mark.parametrize(("path", "value", "message"), [
    ("seeed", 1, "seeed: unknown key (did you mean seed?)"),
    ("seed", "abc", "seed: expected an int, got 'abc'"),
    ("seed", -1, "seed: must be in [0, 2**32)"),
    ("name", "a/b", "name: must be a non-empty folder name"),
    ("deterministic", "yes", "deterministic: expected true or false"),
    ("min_sizes", [0, -5], "min_sizes: must be >= 0"),
    ("split.n_folds", "five", "split.n_folds: expected an int, got 'five'"),
    ("split.val_fraction", 1.5, "split.val_fraction: must be in (0, 1)"),
    ("split.cross_validate", True, "split.n_folds: cross_validate needs n_folds >= 2"),
    ("split.n_folds", 5, "split.n_folds: 5 folds without cross_validate: true would run only "
                         "the first"),
    ("data.exclude", "case7_day0", "data.exclude: "),
    ("data.exclude", ["case7_day0", ""], "data.exclude: holds case or case-day ids, got ''"),
    ("data.kind", "kagle", "data.kind: must be one of kaggle, phantom, "),
    ("data.phantom.n_cases", "three", "data.phantom.n_cases: expected an int, got 'three'"),
    ("data.phantom.n_slices", 2, "data.phantom.n_slices: must be >= 4"),
    ("data.slice_step", 0, "data.slice_step: must be >= 1, got 0"),
    ("data.options", {"images_subdir": 3}, "data.options.images_subdir: expected a string"),
    ("data.optoins", {}, "data.optoins: unknown key (did you mean options?)"),
    ("report.calibration_bins", 1, "report.calibration_bins: must be >= 2"),
    ("parallel.backend", "ray", "parallel.backend: must be one of joblib, dask"),
    ("metrics.dice_both_empty", "x", "metrics.dice_both_empty: expected a number"),
    ("tracks.0.kind", "svm", "tracks[0].kind: must be one of blocks, cnn, nnunet, unet, unetpp, "
                             "deeplabv3plus, got 'svm'"),
    ("tracks.2.params.architecture", "segnet", "tracks[2].params.architecture: must be one "
                                               "of unet, unetpp, deeplabv3plus, got 'segnet'"),
    ("tracks.2.params.architecture", "unetpp", "tracks[2].params.architecture: a track of "
                                               "kind unet has architecture 'unet', got "
                                               "'unetpp' (set the track's kind instead)"),
    ("tracks.0.name", "lgbm", "tracks[1].name: duplicate track name 'lgbm' (also tracks[0])"),
    ("tracks.0.params.block_sise", 33,
     "tracks[0].params.block_sise: unknown key (did you mean block_size?)"),
    ("tracks.0.params.block_size", 32, "tracks[0].params.block_size: must be a positive odd"),
    ("tracks.0.params.feature_params", {"sigmaz": [1]},
     "tracks[0].params.feature_params.sigmaz: unknown parameter of FilterFeaturizer "
     "(did you mean sigmas?)"),
    ("tracks.0.params.feature_params", {"grid": 4},
     "tracks[0].params.feature_params.grid: must be a positive odd int"),
    ("tracks.0.params.model_params", {"n_estimators": "ten"},
     "tracks[0].params.model_params.n_estimators: must be an int in the range [1, inf)"),
    ("tracks.1.params.model_params", {"n_estimator": 5},
     "tracks[1].params.model_params.n_estimator: unknown parameter of LGBMClassifier "
     "(did you mean n_estimators?)"),
    ("tracks.2.params.image_size", 60, "tracks[2].params.image_size: must be divisible"),
    ("tracks.2.params.devcie", "cpu", "tracks[2].params.devcie: unknown key (did you mean "
                                      "device?)"),
    ("tracks.2.params.device", "gpu", "tracks[2].params.device: must be auto, cpu, cuda"),
    ("tracks.2.params.max_stepz", 5, "tracks[2].params.max_stepz: unknown key (did you mean "
                                     "max_steps?)"),
])
def test_every_problem_names_the_file_and_the_key_path(path, value, message):
    from gitract.config import ConfigError

    with pytest.raises(ConfigError) as info:
        config_from_dict(_with(path, value), where="x.yaml")
    text = str(info.value)
    assert text.startswith("x.yaml: ") and message in text, text
    assert "\n" not in text


@pytest.mark.parametrize("kind", ["unetpp", "deeplabv3plus"])
def test_segmentation_net_kinds_take_the_unet_params(kind):
    from gitract.models import ARCHITECTURES
    from gitract.tracks import track_kind, track_kinds

    # one kind per network the track builds
    assert [k for k in track_kinds() if k in ARCHITECTURES] == list(ARCHITECTURES)
    params = {"image_size": 128, "max_steps": 400, "max_epochs": None, "batch_size": 4}
    cfg = config_from_dict({"tracks": [{"name": kind, "kind": kind, "params": params}]})
    assert cfg.tracks[0].kind == kind and cfg.tracks[0].params == params
    assert isinstance(cfg.tracks[0].settings, track_kind(kind).settings)
    assert cfg.tracks[0].settings.architecture == kind
    assert cfg.tracks[0].settings.max_steps == 400
    cfg = config_from_dict({"tracks": [{"name": kind, "kind": kind,
                                        "params": {**params, "architecture": kind}}]})
    assert cfg.tracks[0].params["architecture"] == kind
    with pytest.raises(ValueError, match=r"tracks\[0\]\.params\.image_size: must be "
                                         r"divisible"):
        config_from_dict({"tracks": [{"name": kind, "kind": kind,
                                      "params": {"image_size": 100}}]})


def test_cnn_model_params_are_checked_against_the_block_cnn():
    pytest.importorskip("torch")
    raw = {"tracks": [{"name": "cnn", "kind": "cnn",
                       "params": {"model_params": {"max_epoch": 2}}}]}
    with pytest.raises(ValueError, match=r"tracks\[0\]\.params\.model_params\.max_epoch: "
                                         r"unknown parameter of BlockCNNClassifier \(did you "
                                         r"mean max_epochs\?\)"):
        config_from_dict(raw)
    raw["tracks"][0]["params"]["model_params"] = {"dropout": 1.5}
    with pytest.raises(ValueError, match=r"model_params\.dropout: must be in \[0, 1\)"):
        config_from_dict(raw)
    raw["tracks"][0]["params"] = {"classifier": "rf"}
    with pytest.raises(ValueError, match=r"params\.classifier: a track of kind cnn"):
        config_from_dict(raw)


def test_cnn_context_features_set_the_raw_featurizer_or_must_agree_with_it():
    pytest.importorskip("torch")
    model = {"context_features": True, "channels": [4, 8]}
    raw = {"tracks": [{"name": "cnn-ctx", "kind": "cnn", "params": {"model_params": model}}]}
    cfg = config_from_dict(raw)
    track = cfg.tracks[0].settings
    assert track.make_featurizer().context is True  # derived from the model's key
    raw["tracks"][0]["params"]["feature_params"] = {"context": False}
    with pytest.raises(ValueError, match=r"tracks\[0\]\.params: feature_params\.context must "
                                         r"agree with model_params\.context_features"):
        config_from_dict(raw)
    raw["tracks"][0]["params"]["feature_params"] = {"context": True}
    assert config_from_dict(raw).tracks[0].params["feature_params"] == {"context": True}
    raw["tracks"][0]["params"] = {"model_params": {"context_features": "yes"}}
    with pytest.raises(ValueError, match=r"model_params\.context_features: must be a bool"):
        config_from_dict(raw)
    # the random forest on raw pixels + context (an ablation): its own featurizer key
    rf = {"tracks": [{"name": "rf-33-raw-ctx", "kind": "blocks",
                      "params": {"features": "raw", "feature_params": {"context": True}}}]}
    assert config_from_dict(rf).tracks[0].params["feature_params"] == {"context": True}
    rf["tracks"][0]["params"]["feature_params"] = {"context": "yes"}
    with pytest.raises(ValueError, match=r"feature_params\.context: must be a bool"):
        config_from_dict(rf)


def test_a_number_yaml_reads_as_a_string_is_a_number():
    # PyYAML (YAML 1.1) reads 1e-3 as a string; the config takes it as the number it is.
    path_raw = _with("tracks.2.params.lr", "1e-3")
    cfg = config_from_dict(path_raw)
    assert cfg.tracks[2].params["lr"] == 0.001
    with pytest.raises(ValueError, match="lr: expected a number, got 'fast'"):
        config_from_dict(_with("tracks.2.params.lr", "fast"))


@pytest.mark.parametrize(("text", "where"), [
    ("name: t\nsplit: {n_folds: 1\n", "line 3, column 1: invalid YAML"),
    ("name: t\n  seed: 1\n", "line 2, column 7: invalid YAML: mapping values are not allowed"),
    ("- a\n- b\n", "expected a mapping of settings at the top level, got a list"),
])
def test_invalid_yaml_is_one_line_with_line_and_column(tmp_path, text, where):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ") and where in str(info.value)
    assert "\n" not in str(info.value)


def test_set_overrides_dotted_keys_and_tracks_by_name(tmp_path):
    from gitract.config import apply_sets, parse_sets

    path = tmp_path / "c.yaml"
    path.write_text(yaml_text(BASE))
    cfg = load_config(path, sets=["data.path=/data/x y", "split.n_val=3",
                                  "tracks.unet.params.max_steps=100",
                                  "tracks.1.params.model_params.num_leaves=7",
                                  "data.phantom.n_cases=2", "min_sizes=[0, 64]"])
    assert cfg.data.path == "/data/x y" and cfg.split.n_val == 3
    assert cfg.tracks[2].params["max_steps"] == 100
    assert cfg.tracks[1].params["model_params"] == {"num_leaves": 7}
    assert cfg.data.phantom == {"n_cases": 2} and cfg.min_sizes == (0, 64)
    raw, paths = apply_sets(BASE, parse_sets(["tracks.unet.params.depth=2"]))
    assert paths == {"tracks[2].params.depth": "tracks.unet.params.depth"}
    assert "depth" not in BASE["tracks"][2]["params"]  # a copy: the input is untouched


@pytest.mark.parametrize(("item", "message"), [
    ("tracks.unt.params.max_steps=5", "--set: tracks.unt.params.max_steps: no track named "
                                      "'unt' (did you mean unet?)"),
    ("split.n_folds=x", "--set: split.n_folds: expected an int, got 'x'"),
    ("tracks.unet.params.max_stepz=5", "--set: tracks.unet.params.max_stepz: unknown key "
                                       "(did you mean max_steps?)"),
    ("seed", "--set: seed: expected KEY=VALUE"),
    ("seed.x=1", "--set: seed.x: seed is 0, not a mapping"),
    ("name=[a", "--set: name: invalid YAML value '[a'"),
])
def test_a_bad_set_is_blamed_on_set(tmp_path, item, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text({**BASE, "seed": 0}))
    with pytest.raises(ValueError) as info:
        load_config(path, sets=[item])
    assert str(info.value).startswith(message), str(info.value)


def yaml_text(raw) -> str:
    import yaml

    return yaml.safe_dump(raw, sort_keys=False)


_TRACK = "tracks:\n  - {name: rf, kind: blocks}\n"


@pytest.mark.parametrize(("text", "message"), [
    ("", ": the config is empty (expected a mapping of settings"),
    ("# only a comment\n", ": the config is empty"),
    ("- a\n- b\n", ": expected a mapping of settings at the top level, got a list"),
    ("quick\n", ": expected a mapping of settings at the top level, got a str ('quick')"),
    ("3\n", ": expected a mapping of settings at the top level, got an int (3)"),
    ("seed: 1\n" + _TRACK, ": name: missing: a config names its run"),
    ("name: t\n", ": tracks: missing: a config needs at least one track"),
    ("name: t\ntracks: []\n", ": tracks: is an empty list: a config needs at least one track"),
    ("name: t\ntracks:\n", ": tracks: is null (an empty section?)"),
    ("name: t\ndata: null\n" + _TRACK, ": data: is null (an empty section?): give its "
                                       "settings, or leave the key out for the defaults "
                                       "(the embedded phantom)"),
    ("name: t\ndata:\n" + _TRACK, ": data: is null"),
    ("name: t\nseed: 1\n" + _TRACK + "seed: 2\n", ": seed: duplicate key on lines 2 and 5"),
    ("name: t\ntracks:\n  - name: rf\n    kind: blocks\n    name: lgbm\n",
     ": name: duplicate key on lines 3 and 5"),
    ("name: t\ndata: {kind: phantom, kind: kaggle}\n" + _TRACK,
     ": kind: duplicate key on lines 2 and 2"),
])
def test_a_config_file_that_cannot_mean_a_run_is_named(tmp_path, text, message):
    """An empty or non-mapping file, a missing name or track, a null section and a key
    given twice: one line naming the file and the key, before anything runs."""
    from gitract.config import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}{message}"), str(info.value)
    assert "\n" not in str(info.value)


def test_name_and_tracks_may_come_from_set_and_merge_keys_may_be_overridden(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("tracks:\n  - name: rf\n    kind: blocks\n    params: &p {classifier: rf, "
                    "block_size: 9}\n  - name: rf2\n    kind: blocks\n    params:\n"
                    "      <<: *p\n      block_size: 11\n")
    cfg = load_config(path, sets=["name=from-set"])
    assert cfg.name == "from-set"
    assert [t.params["block_size"] for t in cfg.tracks] == [9, 11]
    with pytest.raises(ValueError, match=r"^--set: tracks: is an empty list"):
        load_config(path, sets=["name=x", "tracks=[]"])


def test_configs_built_in_code_keep_their_defaults():
    """``name`` and ``tracks`` are required of files only: code (the track commands, the
    tests) builds configs from partial mappings; a null section is refused there too."""
    from gitract.config import ConfigError

    assert config_from_dict({}).name == "quick"
    with pytest.raises(ConfigError, match=r"^config: data: is null"):
        config_from_dict({"data": None})
