"""The options every command shares: ``--version``, ``--set``, ``--device``, ``--n-jobs``,
``-v`` / ``--log-level``, ``--no-progress``, an example on every help page, and one
``--images-subdir`` default for every predict command."""

from __future__ import annotations

import argparse
import logging

import pytest
import yaml

import gitract
from gitract.cli import COMMANDS, _parsers, build_parser, main

CONFIG = {
    "name": "opts",
    "data": {"kind": "phantom"},
    "tracks": [
        {"name": "rf", "kind": "blocks", "params": {"classifier": "rf", "block_size": 9}},
        {"name": "cnn", "kind": "cnn", "params": {"block_size": 9}},
        {"name": "unet", "kind": "unet", "params": {"image_size": 64}},
        {"name": "upp", "kind": "unetpp", "params": {"image_size": 64}},
        {"name": "dlab", "kind": "deeplabv3plus", "params": {"image_size": 64}},
    ],
}


@pytest.fixture
def captured(monkeypatch):
    """The config and options ``gitract compare`` hands to the engine (nothing runs)."""
    import gitract.commands.compare

    seen = {}

    def fake(config, out, **kwargs):
        seen.update(config=config, out=out, **kwargs)
        logging.getLogger("gitract.compare").info("a log line of the run")
        logging.getLogger("gitract.compare").debug("a debug line of the run")
        return out

    monkeypatch.setattr(gitract.commands.compare, "run_comparison", fake)
    return seen


def _config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gitract {gitract.__version__}"


def test_set_device_and_n_jobs_reach_the_config(tmp_path, captured):
    pytest.importorskip("torch")
    path = _config_file(tmp_path)
    assert main(["compare", str(path), "--out", str(tmp_path / "o"), "--device", "cpu",
                 "--n-jobs", "2", "--set", "data.path=/data/uw madison",
                 "--set", "tracks.unet.params.max_steps=100", "--set", "split.n_test=3",
                 "--set", "tracks.rf.params.model_params={max_depth: 4}"]) == 0
    config = captured["config"]
    assert config.data.path == "/data/uw madison" and config.split.n_test == 3
    assert config.parallel.n_jobs == 2
    tracks = {t.name: t.params for t in config.tracks}
    assert tracks["unet"]["max_steps"] == 100 and tracks["unet"]["device"] == "cpu"
    assert tracks["upp"]["device"] == "cpu" and tracks["dlab"]["device"] == "cpu"
    assert tracks["cnn"]["model_params"]["device"] == "cpu"  # the deep tracks only
    assert "device" not in tracks["rf"] and tracks["rf"]["model_params"] == {"max_depth": 4}
    assert captured["progress"] is True  # bars on (drawn only on a terminal)


def test_options_go_before_or_after_the_command(tmp_path, captured):
    path = _config_file(tmp_path)
    assert main(["--no-progress", "compare", str(path), "--out", str(tmp_path / "o")]) == 0
    assert captured["progress"] is False
    assert main(["compare", str(path), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert captured["progress"] is False


@pytest.mark.parametrize(("flags", "shown", "hidden"), [
    ([], [], ["a log line", "a debug line"]),
    (["-v"], ["INFO a log line of the run"], ["a debug line"]),
    (["--log-level", "info"], ["INFO a log line of the run"], ["a debug line"]),
    (["--log-level", "ERROR"], [], ["a log line"]),
])
def test_log_level_puts_log_lines_on_the_console(tmp_path, captured, capsys, flags, shown,
                                                 hidden):
    path = _config_file(tmp_path)
    assert main(["compare", str(path), "--out", str(tmp_path / "o"), *flags]) == 0
    err = capsys.readouterr().err
    assert all(s in err for s in shown) and not any(h in err for h in hidden), err
    assert not logging.getLogger("gitract").handlers  # the console handler is removed


def test_bad_flag_values_are_usage_errors(tmp_path, capsys):
    path = _config_file(tmp_path)
    for flags in (["--device", "gpu"], ["--n-jobs", "0"], ["--log-level", "loud"]):
        with pytest.raises(SystemExit) as info:
            main(["compare", str(path), *flags])
        assert info.value.code == 2
        assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_page_has_an_example(command):
    pytest.importorskip("torch")
    parser = build_parser([command])
    pages = [p for p in _parsers(parser) if p.prog.split()[1:2] == [command]]
    assert pages
    for page in pages:
        assert page.epilog and "gitract " in page.epilog, page.prog
        assert "example" in page.format_help(), page.prog
        for flag in ("--debug", "-v", "--log-level", "--no-progress"):
            assert flag in page.format_help(), (page.prog, flag)


def test_every_predict_command_reads_the_same_scans_folder():
    pytest.importorskip("torch")
    from gitract.commands.predict import IMAGES_SUBDIR

    seen = {}
    for argv in (["predict", "RUN", "--data-dir", "D", "--out", "s.csv"],
                 ["blocks", "predict", "--model", "RUN", "--data-dir", "D", "--out", "s.csv"],
                 ["unet", "predict", "RUN", "--data-dir", "D", "--out", "s.csv"],
                 ["export", "coco-pred", "RUN", "--data-dir", "D"]):
        seen[argv[0]] = build_parser(argv).parse_args(argv).images_subdir
    assert len(seen) == 4 and set(seen.values()) == {IMAGES_SUBDIR} == {"test"}


def test_track_commands_take_set_and_n_jobs():
    from gitract.commands import blocks
    from gitract.commands._engine import track_config

    parser = argparse.ArgumentParser()
    blocks.configure_parser(parser)
    args = parser.parse_args(["evaluate", "--data", "phantom", "--block-size", "9",
                              "--n-jobs", "2", "--set", "tracks.rf-9.params.step=8",
                              "--set", "data.max_cases=3"])
    config = track_config(args, name="rf-9", kind="blocks", params=blocks.track_params(args),
                          evaluate=True)
    assert config.tracks[0].params["step"] == 8 and config.data.max_cases == 3
    assert config.parallel.n_jobs == 2
