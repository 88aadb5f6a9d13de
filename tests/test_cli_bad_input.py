"""Bad input that used to end as ``error: unexpected`` (exit 1), or late: each now ends with
exactly one stderr line ``error: <file or key>: <problem>``, exit 2, before any work and
with no run folder or output file left behind. SIGTERM ends like Ctrl-C."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gitract.cli import main
from gitract.data.phantom import PhantomConfig, write_phantom

#: A tiny comparison on a phantom folder given as data.path: a block track and a U-Net.
CONFIG = {
    "name": "tiny-bad",
    "seed": 0,
    "data": {"kind": "phantom"},
    "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "val_fraction": 0.5},
    "report": {"n_example_slices": 1},
    "tracks": [
        {"name": "rf", "kind": "blocks",
         "params": {"classifier": "rf", "block_size": 9, "step": 8, "n_per_class": 10,
                    "background_cap": 20, "model_params": {"n_estimators": 5, "n_jobs": 1}}},
        {"name": "unet", "kind": "unet",
         "params": {"image_size": 32, "base_channels": 4, "depth": 2, "max_epochs": 1,
                    "batch_size": 4, "num_threads": 1}},
    ],
}


@pytest.fixture(autouse=True)
def cache_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GITRACT_CACHE", str(tmp_path_factory.getbasetemp() / "bad-cache"))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    """A labelled phantom folder (Kaggle layout), never modified: copy it to damage it."""
    return write_phantom(tmp_path_factory.mktemp("bad") / "data",
                         PhantomConfig(n_cases=3, n_days=1, n_slices=4, sizes=((64, 64),)))


def _copy(phantom: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(phantom, tmp_path / "data"))


def _config(tmp_path: Path, data: Path, **edits) -> Path:
    raw = copy.deepcopy(CONFIG)
    raw["data"]["path"] = str(data)
    for key, value in edits.items():
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[parts[-1]] = value
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def one_error_line(capsys) -> str:
    """The single stderr line of a failed command (and no traceback anywhere)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines[0]
    assert "unexpected" not in lines[0], lines[0]
    return lines[0]


def _usage_error(capsys, argv: list[str]) -> str:
    """The one error line of a flag the parser rejects (exit 2, no usage text)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err and len(lines) == 1, captured.err
    return lines[0]


# ------------------------------------------------------------------ 1, 2: no masks
def test_compare_on_a_folder_without_train_csv(phantom, tmp_path, capsys):
    data = _copy(phantom, tmp_path)
    (data / "train.csv").unlink()
    out = tmp_path / "run"
    assert main(["compare", str(_config(tmp_path, data)), "--out", str(out)]) == 2
    assert one_error_line(capsys) == (
        f"error: {data}: train.csv is missing (training and scoring need its masks; a "
        "Kaggle-layout folder holds train.csv next to train/)")
    assert not out.exists()


def test_blocks_train_on_data_without_masks(phantom, tmp_path, capsys):
    data = _copy(phantom, tmp_path)
    (data / "train.csv").unlink()
    out = tmp_path / "run"
    assert main(["blocks", "train", "--data", "kaggle", "--path", str(data),
                 "--out", str(out)]) == 2
    assert one_error_line(capsys).startswith(f"error: {data}: train.csv is missing")
    assert not out.exists()


# --------------------------------------------------------------------- 3: devices
@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without CUDA (and without MPS), whatever it has."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    return torch


def _no_work(monkeypatch):
    """Fail the test if the data is indexed (the device must be refused before)."""
    import gitract.compare._run as run

    def indexed(*args, **kwargs):
        raise AssertionError("the data was read before the device was checked")

    monkeypatch.setattr(run, "load_index", indexed)


@pytest.mark.parametrize(("argv", "edits", "expected"), [
    (["--device", "cuda"], {},
     "error: --device: 'cuda' requested but CUDA is not available on this machine"),
    (["--set", "tracks.unet.params.device=cuda"], {},
     "error: --set: tracks.unet.params.device: 'cuda' requested but CUDA is not available"),
    ([], {"tracks.1.params.device": "mps"},
     "error: {cfg}: tracks[1].params.device: 'mps' requested but MPS is not available"),
    ([], {"tracks.0.params.classifier": "cnn", "tracks.0.params.features": "raw",
          "tracks.0.params.model_params": {"device": "cuda:0"}},
     "error: {cfg}: tracks[0].params.model_params.device: 'cuda:0' requested but CUDA"),
])
def test_a_missing_device_is_refused_before_any_work(phantom, tmp_path, capsys, no_cuda,
                                                     monkeypatch, argv, edits, expected):
    _no_work(monkeypatch)
    cfg = _config(tmp_path, phantom, **edits)
    out = tmp_path / "run"
    assert main(["compare", str(cfg), "--out", str(out), *argv]) == 2
    assert one_error_line(capsys).startswith(expected.format(cfg=cfg))
    assert not out.exists()


def test_a_cuda_index_beyond_the_device_count(phantom, tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _no_work(monkeypatch)
    out = tmp_path / "run"
    assert main(["compare", str(_config(tmp_path, phantom)), "--out", str(out),
                 "--device", "cuda:1"]) == 2
    assert one_error_line(capsys) == ("error: --device: 'cuda:1' requested but this machine "
                                      "has 1 CUDA device(s) (cuda:0 to cuda:0)")
    assert not out.exists()


def test_track_commands_refuse_a_missing_device(phantom, tmp_path, capsys, no_cuda):
    out = tmp_path / "run"
    assert main(["unet", "train", "--data", "kaggle", "--path", str(phantom),
                 "--device", "cuda", "--out", str(out)]) == 2
    assert one_error_line(capsys).startswith(
        "error: --device: tracks[0].params.device: 'cuda' requested but CUDA")
    assert not out.exists()


# ------------------------------------------------------------------- 4: scheduler
@pytest.mark.parametrize(("argv", "expected"), [
    (["--scheduler", "notanaddress"],
     "error: --scheduler: expected a scheduler address like tcp://host:8786, got "
     "'notanaddress'"),
    (["--scheduler", "tcp://"],
     "error: --scheduler: expected a scheduler address like tcp://host:8786, got 'tcp://'"),
    (["--set", "parallel.scheduler=tcp://host:port"],
     "error: --set: parallel.scheduler: expected a scheduler address like tcp://host:8786"),
    (["--scheduler", "tcp://127.0.0.1:1"],
     "error: --scheduler: cannot reach the Dask scheduler at tcp://127.0.0.1:1: "),
    (["--set", "parallel={backend: dask, scheduler: 'tcp://127.0.0.1:1'}"],
     "error: parallel.scheduler: cannot reach the Dask scheduler at tcp://127.0.0.1:1: "),
])
def test_a_bad_scheduler_ends_in_one_line_before_any_work(phantom, tmp_path, capsys, argv,
                                                          expected):
    out = tmp_path / "run"
    start = time.monotonic()
    assert main(["compare", str(_config(tmp_path, phantom)), "--out", str(out), *argv]) == 2
    assert one_error_line(capsys).startswith(expected)
    assert time.monotonic() - start < 60  # a short timeout, not dask's 30 s per try
    assert not out.exists()


# ------------------------------------------------------- 5, 6, 7: files and flags
def test_score_names_an_undecodable_submission(phantom, tmp_path, capsys):
    pred = tmp_path / "sub.csv"
    pred.write_text("id,class,predicted\n", encoding="utf-16")
    assert main(["score", "--data-dir", str(phantom), "--pred", str(pred)]) == 2
    assert one_error_line(capsys) == (
        f"error: {pred}: cannot read the submission: not UTF-8 text (invalid start byte at "
        "byte 0)")


@pytest.mark.parametrize("argv", [
    ["predict", "RUN", "--data-dir", "D", "--out", "s.csv", "--threads", "0"],
    ["unet", "predict", "RUN", "--data-dir", "D", "--out", "s.csv", "--threads", "-1"],
    ["export", "coco-pred", "RUN", "--data-dir", "D", "--threads", "0"],
])
def test_threads_must_be_positive(capsys, argv):
    line = _usage_error(capsys, argv)
    assert line.startswith("error: --threads: expected a positive int, got "), line
    assert line.endswith(" --help shows the options)"), line


def test_predict_refuses_a_missing_device_before_loading(tmp_path, capsys, no_cuda):
    out = tmp_path / "sub.csv"
    assert main(["predict", str(tmp_path / "nowhere"), "--data-dir", str(tmp_path),
                 "--out", str(out), "--device", "cuda"]) == 2
    assert one_error_line(capsys) == ("error: --device: 'cuda' requested but CUDA is not "
                                      "available on this machine")
    assert not out.exists()


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--cases", "0", "expected a positive int, got '0'"),
    ("--days", "0", "expected a positive int, got '0'"),
    ("--slices", "-1", "expected an int >= 4, got '-1'"),
    ("--slices", "3", "expected an int >= 4, got '3'"),
    ("--seed", "-1", "expected an int >= 0, got '-1'"),
])
def test_phantom_sizes_are_checked_by_the_parser(tmp_path, capsys, flag, value, expected):
    out = tmp_path / "phantom"
    line = _usage_error(capsys, ["phantom", str(out), flag, value])
    assert line == f"error: {flag}: {expected} (gitract phantom --help shows the options)"
    assert not out.exists()


# -------------------------------------------------------------------- 8: SIGTERM
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child needs POSIX")
def test_sigterm_ends_like_ctrl_c(phantom, tmp_path):
    cfg = _config(tmp_path, phantom)
    out = tmp_path / "run"
    argv = ["compare", str(cfg), "--out", str(out), "--no-progress"]
    ready = tmp_path / "running"
    # The child is `gitract compare` whose steps first say they have begun and then wait
    # (the run folder exists, nothing is trained): the signal lands mid-run.
    child = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import gitract.compare._run as run\n"
        "def waiting(*args, **kwargs):\n"
        f"    Path({str(ready)!r}).write_text('')\n"
        "    time.sleep(120)\n"
        "run._run_steps = waiting\n"
        "from gitract.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "GITRACT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", child, *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.is_file(), proc.communicate(timeout=60)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed wait leaves no child behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"interrupted (SIGTERM): finished steps are kept in {out}; to resume, run the same "
        f"command again: gitract {' '.join(argv)}"]
    assert "interrupted; finished steps are kept" in (out / "log.txt").read_text()


# ------------------------------------------------------- 9: data checked at indexing
def _first_png(data: Path) -> Path:
    return sorted((data / "train").rglob("*.png"))[0]


def _edit_rle(data: Path, value: str) -> str:
    """Replace the first non-empty RLE of train.csv; returns its 'row <id> <class>'."""
    frame = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    i = frame.index[frame["segmentation"] != ""][0]
    frame.loc[i, "segmentation"] = value
    frame.to_csv(data / "train.csv", index=False)
    return f"row {frame.loc[i, 'id']} {frame.loc[i, 'class']}"


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda d: _edit_rle(d, "1 999999"), "{csv}: {row}: RLE out of bounds"),
    (lambda d: _edit_rle(d, "2 2 7"), "{csv}: {row}: malformed RLE (odd number of values: 3)"),
    (lambda d: _edit_rle(d, "5 x"), "{csv}: {row}: malformed RLE (non-integer token)"),
    (lambda d: _first_png(d).write_bytes(b"\x89PNG junk"),
     "{png}: not a PNG file (bad signature or header)"),
    (lambda d: _cut(_first_png(d)),
     "{png}: truncated PNG (the file does not end with its IEND chunk)"),
    (lambda d: _first_png(d).write_bytes((d.parent / "other.png").read_bytes()),
     "{png}: image is 80x64 (WxH) but the file name says 64x64"),
])
def test_bad_rows_and_files_stop_compare_before_the_run_folder(phantom, tmp_path, capsys,
                                                               damage, expected):
    from gitract.data.kaggle import write_kaggle_png

    data = _copy(phantom, tmp_path)
    write_kaggle_png(tmp_path / "other.png", np.arange(64 * 80, dtype=np.uint16).reshape(64, 80))
    row = damage(data)
    out = tmp_path / "run"
    assert main(["compare", str(_config(tmp_path, data)), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: " + expected.format(csv=data / "train.csv", row=row,
                                                       png=_first_png(data))), line
    assert not out.exists()


def test_damaged_pixel_data_is_named_when_its_scan_is_decoded(phantom, tmp_path, capsys):
    """Damage inside a PNG's pixel data (header and end intact) shows only when the scan
    is decoded, after the run folder exists: one line naming the file, exit 2, and the
    folder keeps what the README says (config, env, split, log; no summary)."""
    data = _copy(phantom, tmp_path)
    png = _first_png(data)
    raw = bytearray(png.read_bytes())
    start = raw.index(b"IDAT") + 4
    raw[start + 10:start + 60] = bytes(50)  # zlib data zeroed; the chunk CRC now fails
    png.write_bytes(bytes(raw))
    out = tmp_path / "run"
    assert main(["compare", str(_config(tmp_path, data)), "--out", str(out)]) == 2
    assert one_error_line(capsys).startswith(f"error: {png}: unreadable or corrupt PNG")
    assert {p.name for p in out.iterdir()} >= {"config.json", "env.json", "splits.json",
                                               "log.txt"}
    assert not (out / "summary.json").exists()
    assert f"failed: DataError: {png}" in (out / "log.txt").read_text()


# ----------------------------------------------------------- validate's exit status
def test_validate_exits_2_with_one_error_line_when_there_are_problems(phantom, tmp_path,
                                                                       capsys):
    assert main(["validate", str(phantom)]) == 0
    assert capsys.readouterr().err == ""
    data = _copy(phantom, tmp_path)
    _cut(_first_png(data))
    _edit_rle(data, "1 999999")
    assert main(["validate", str(data)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"error: {data}: 2 problems (listed above; the first: {data}"), line
    assert "problems: 2" in captured.out
