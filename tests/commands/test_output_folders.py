"""The output-folder rule: a command writes only into a folder that is new, empty, or one it
wrote itself for the same kind of output; the user's files are kept byte for byte.

Pins the four ways earlier versions lost files: ``phantom --overwrite`` on any folder,
``compare --out`` into a folder holding the user's files, ``compare --out`` into another
config's run, and an empty config that ran into ``reports/quick``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitract.cli import main
from gitract.utils.outputs import MARKER

CONFIG = """\
name: {name}
seed: {seed}
data:
  kind: phantom
  phantom: {{n_cases: 3, n_days: 1, n_slices: 6, sizes: [[64, 64]]}}
split: {{n_folds: 1, n_test: 1, test_fraction: null, val_fraction: 0.5}}
report: {{n_example_slices: 1}}
tracks:
  - name: rf-33
    kind: blocks
    params: {{classifier: rf, block_size: 33, step: 8, n_per_class: 10, background_cap: 20,
             model_params: {{n_estimators: 5, n_jobs: 1}}}}
"""


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` with its bytes (None for folders)."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A cache and reports folder of the module's own, and two configs."""
    root = tmp_path_factory.mktemp("outputs")
    patch = pytest.MonkeyPatch()
    patch.setenv("GITRACT_CACHE", str(root / "cache"))
    patch.setenv("GITRACT_REPORTS", str(root / "reports"))
    configs = {}
    for name, seed in (("a", 0), ("b", 1)):
        configs[name] = root / f"{name}.yaml"
        configs[name].write_text(CONFIG.format(name=f"run-{name}", seed=seed))
    yield root, configs
    patch.undo()


@pytest.fixture(scope="module")
def run_a(env):
    root, configs = env
    out = root / "run-a"
    assert main(["compare", str(configs["a"]), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / MARKER).read_text())["kind"] == "run"
    return out


def test_compare_refuses_a_folder_holding_the_users_files(env, tmp_path, capsys):
    _, configs = env
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my own report")
    (out / "data.csv").write_text("1,2,3\n")
    before = _tree(out)
    assert main(["compare", str(configs["a"]), "--out", str(out), "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert str(out) in line and "not written by gitract" in line and "--force" in line
    assert "report.md" in line  # says what is in it
    assert _tree(out) == before


def test_compare_refuses_a_run_of_another_config_and_names_the_keys(env, run_a, capsys):
    _, configs = env
    before = _tree(run_a)
    assert main(["compare", str(configs["b"]), "--out", str(run_a), "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert str(run_a) in line and "another config" in line
    assert "name" in line and "seed" in line and "--force" in line
    assert _tree(run_a) == before
    # The same config resumes (every step cached); only the log and marker grow.
    assert main(["compare", str(configs["a"]), "--out", str(run_a), "--no-progress"]) == 0
    capsys.readouterr()
    after = _tree(run_a)
    assert {k: v for k, v in after.items() if k.startswith("steps")} == \
        {k: v for k, v in before.items() if k.startswith("steps")}


def test_compare_force_writes_beside_the_users_files(env, tmp_path, capsys):
    _, configs = env
    out = tmp_path / "forced"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "report.md").write_text("mine")
    assert main(["compare", str(configs["a"]), "--out", str(out), "--no-progress",
                 "--force"]) == 0
    assert (out / "notes.txt").read_text() == "keep me"  # other names are kept
    assert (out / "report.md").read_text() != "mine"  # --force said it replaces this
    assert "--force" in (out / "log.txt").read_text()
    assert "report.md" in capsys.readouterr().err  # the warning names what it replaces


def test_an_empty_config_never_writes_over_reports(env, tmp_path, capsys):
    root, _ = env
    quick = root / "reports" / "quick"
    quick.mkdir(parents=True, exist_ok=True)
    (quick / "report.md").write_text("committed report")
    (quick / "log.txt").write_text("committed log")
    (quick / "config.json").write_text(json.dumps({"name": "quick", "tracks": [], "split": {}}))
    before = _tree(quick)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert main(["compare", str(empty), "--no-progress"]) == 2
    _one_error_line(capsys)
    assert _tree(quick) == before


def test_compare_out_under_a_file_is_named(env, tmp_path, capsys):
    _, configs = env
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["compare", str(configs["a"]), "--out", str(blocker / "run"),
                 "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert str(blocker) in line and "is a file" in line and ".tmp" not in line
    assert blocker.read_text() == "x"


def test_phantom_overwrite_keeps_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "thesis"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.tex").write_text("\\chapter{One}")
    (out / "sub" / "notes.txt").write_text("notes")
    before = _tree(out)
    args = ["phantom", str(out), "--cases", "1", "--days", "1", "--slices", "4"]
    assert main([*args, "--overwrite"]) == 2
    line = _one_error_line(capsys)
    assert str(out) in line and "thesis.tex" in line and "--force" in line
    assert _tree(out) == before
    # A phantom folder: refused without --overwrite, replaced with it.
    ph = tmp_path / "ph"
    assert main(["phantom", str(ph), "--cases", "1", "--days", "1", "--slices", "4"]) == 0
    capsys.readouterr()
    assert main(["phantom", str(ph), "--cases", "1", "--days", "1", "--slices", "4"]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert main(["phantom", str(ph), "--cases", "1", "--days", "1", "--slices", "5",
                 "--overwrite"]) == 0


def test_predict_never_replaces_a_file_it_did_not_write(env, run_a, tmp_path, capsys):
    root, _ = env
    data = next((root / "cache").glob("phantom-*"))
    thesis = tmp_path / "thesis.csv"
    thesis.write_text("chapter,page\n1,2\n")
    args = ["predict", str(run_a), "--data-dir", str(data), "--images-subdir", "train",
            "--no-progress", "--out"]
    assert main([*args, str(thesis)]) == 2
    line = _one_error_line(capsys)
    assert str(thesis) in line and "--force" in line
    assert thesis.read_text() == "chapter,page\n1,2\n"
    sub = tmp_path / "sub.csv"
    assert main([*args, str(sub)]) == 0
    assert main([*args, str(sub)]) == 0  # its own submission: written again
    assert sub.read_text().startswith("id,class,predicted")


def test_export_coco_refuses_a_folder_of_other_files(env, run_a, tmp_path, capsys):
    root, _ = env
    data = next((root / "cache").glob("phantom-*"))
    out = tmp_path / "coco"
    out.mkdir()
    (out / "train.json").write_text("{\"mine\": true}")
    before = _tree(out)
    args = ["export", "coco", str(data), "--split", str(run_a / "splits.json"),
            "--out", str(out)]
    assert main(args) == 2
    assert str(out) in _one_error_line(capsys)
    assert _tree(out) == before
    fresh = tmp_path / "coco2"
    assert main([*args[:-1], str(fresh)]) == 0
    assert main([*args[:-1], str(fresh)]) == 0  # its own folder: written again
    assert json.loads((fresh / MARKER).read_text())["kind"] == "coco"


@pytest.mark.parametrize("name", ["quick", "real", "phantom_long", "ablation_cnn_sampling",
                                  "ablation_features",
                                  "ablation_real_context"])
def test_each_committed_report_is_the_same_config_as_its_yaml(name):
    """``make experiments`` resumes ``reports/quick`` (and the other committed runs) only
    while the YAML still resolves to the config the report was made with."""
    from gitract.compare import check_run_folder
    from gitract.config import load_config
    from gitract.paths import REPO_ROOT

    folder = check_run_folder(REPO_ROOT / "reports" / name,
                              load_config(REPO_ROOT / "experiments" / "configs" / f"{name}.yaml"),
                              command="test")
    assert folder.status == "ours"
