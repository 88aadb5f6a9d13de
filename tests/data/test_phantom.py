"""The synthetic phantom: Kaggle layout, determinism, continuity, atomic writes."""

from __future__ import annotations

import filecmp
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gitract.constants import CLASSES
from gitract.data.phantom import (
    PhantomConfig,
    generate_case_day,
    make_phantom_case,
    phantom_day_numbers,
    write_phantom,
)
from gitract.data.rle import rle_decode

TINY = PhantomConfig(
    n_cases=2, n_days=2, n_slices=8, sizes=((96, 80), (112, 112)), seed=3
)
NAME_RE = re.compile(r"^slice_(\d{4})_(\d+)_(\d+)_(\d+\.\d{2})_(\d+\.\d{2})\.png$")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_phantom(tmp_path_factory.mktemp("phantom") / "out", TINY)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_writes_the_kaggle_layout_with_real_sizes_and_spacings(tiny_dir):
    pngs = sorted((tiny_dir / "train").glob("case*/case*_day*/scans/*.png"))
    assert len(pngs) == 2 * 2 * 8
    for path in pngs:
        m = NAME_RE.match(path.name)
        assert m, path.name
        with Image.open(path) as im:
            assert im.size == (int(m.group(2)), int(m.group(3)))  # (width, height)
            assert im.mode in ("I;16", "I")
        assert m.group(4) == m.group(5) and float(m.group(4)) in TINY.spacings
        case_dir, day_dir = path.parent.parent.parent.name, path.parent.parent.name
        assert day_dir.startswith(case_dir + "_day")
    assert {p.parent.parent.parent.name for p in pngs} == {"case1", "case2"}
    case1 = [p for p in pngs if p.parent.parent.name.startswith("case1_")]
    assert sorted(int(NAME_RE.match(p.name).group(1)) for p in case1)[:2] == [1, 1]


def test_png_are_16_bit_and_equal_the_generated_volume(tiny_dir):
    volume, masks, spacing = generate_case_day(TINY, 1, 0)
    day = phantom_day_numbers(TINY, 1)[0]
    scans = tiny_dir / "train" / "case2" / f"case2_day{day}" / "scans"
    read = np.stack([np.array(Image.open(p)) for p in sorted(scans.glob("*.png"))])
    assert read.shape == volume.shape
    np.testing.assert_array_equal(read.astype(np.uint16), volume)
    assert volume.max() > 255
    assert Path(next(scans.glob("*.png"))).name.endswith(
        f"_{spacing[0]:.2f}_{spacing[1]:.2f}.png"
    )


def test_csv_has_three_rows_per_id_and_rle_decodes_to_the_masks(tiny_dir):
    frame = pd.read_csv(tiny_dir / "train.csv")
    assert list(frame.columns) == ["id", "class", "segmentation"]
    assert (frame.groupby("id")["class"].apply(tuple) == CLASSES).all()
    assert frame["id"].nunique() == 2 * 2 * 8
    for case_index in range(TINY.n_cases):
        for day_index, day in enumerate(phantom_day_numbers(TINY, case_index)):
            volume, masks, _ = generate_case_day(TINY, case_index, day_index)
            for k in range(TINY.n_slices):
                rows = frame[
                    frame["id"] == f"case{case_index + 1}_day{day}_slice_{k + 1:04d}"
                ]
                for c, cls in enumerate(CLASSES):
                    rle = rows.loc[rows["class"] == cls, "segmentation"].iloc[0]
                    np.testing.assert_array_equal(
                        rle_decode(rle, volume.shape[1:]), masks[k, ..., c]
                    )


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny_dir):
    config = replace(TINY, n_cases=1, n_days=1)
    a = write_phantom(tmp_path / "a", config)
    b = write_phantom(tmp_path / "b", config)
    c = write_phantom(tmp_path / "c", replace(config, seed=4))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)
    assert (a / "train.csv").read_bytes() != (c / "train.csv").read_bytes()
    # a case's first scan does not depend on how many cases or days are written
    assert all(
        filecmp.cmp(a / f, tiny_dir / f, shallow=False)
        for f in files
        if f.suffix == ".png"
    )


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_parallel_write_gives_the_same_bytes(tmp_path):
    # three cases over two workers: rows come back from both and must join in order
    config = replace(TINY, n_cases=3, n_slices=5)
    one = write_phantom(tmp_path / "one", config, n_jobs=1)
    two = write_phantom(tmp_path / "two", config, n_jobs=2)
    files = _files(one)
    assert len(files) == 3 * 2 * 5 + 2 and files == _files(two)
    assert all(filecmp.cmp(one / f, two / f, shallow=False) for f in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]


@pytest.mark.parametrize("n_jobs", [0, 1.5, True, "2"])
def test_write_rejects_bad_n_jobs(tmp_path, n_jobs):
    with pytest.raises(ValueError, match="n_jobs"):
        write_phantom(tmp_path / "out", TINY, n_jobs=n_jobs)
    assert list(tmp_path.iterdir()) == []


def test_organs_are_continuous_and_absent_from_end_slices():
    # near-default geometry (adult-sized body, ~6 mm slices), smaller images
    config = PhantomConfig(
        n_cases=2,
        n_days=1,
        n_slices=24,
        sizes=((200, 180),),
        spacings=(1.5,),
        organ_extent_mm=110.0,
        seed=1,
    )
    for case_index in range(config.n_cases):
        _, masks, _ = generate_case_day(config, case_index, 0)
        start, stop = config.empty_slices()
        assert not masks[:start].any() and not masks[masks.shape[0] - stop :].any()
        for c in range(3):
            present = masks[..., c].any(axis=(1, 2))
            assert present.sum() >= 4, CLASSES[c]
            dices = [
                _dice(masks[k, ..., c], masks[k + 1, ..., c])
                for k in range(len(present) - 1)
                if present[k] and present[k + 1]
            ]
            assert np.mean(dices) > 0.6, (CLASSES[c], np.round(dices, 2))


def test_every_class_present_and_days_deform_the_anatomy():
    for case_index in range(TINY.n_cases):
        _, day0, _ = generate_case_day(TINY, case_index, 0)
        _, day1, _ = generate_case_day(TINY, case_index, 1)
        assert day0.any(axis=(0, 1, 2)).all() and day1.any(axis=(0, 1, 2)).all()
        assert not np.array_equal(day0, day1)
        assert _dice(day0.any(-1), day1.any(-1)) > 0.4  # same patient, moved a little
        assert len(set(phantom_day_numbers(TINY, case_index))) == TINY.n_days


def test_intensity_scale_differs_per_case():
    config = replace(TINY, n_cases=4, n_days=1)
    maxima = [int(generate_case_day(config, i, 0)[0].max()) for i in range(4)]
    assert max(maxima) > 1.3 * min(maxima), maxima
    assert all(2000 * 0.7 < m < 30000 * 1.6 for m in maxima), maxima


def test_make_phantom_case_matches_generate(tiny_dir):
    stack = make_phantom_case(TINY, 0, 1)
    volume, masks, spacing = generate_case_day(TINY, 0, 1)
    np.testing.assert_array_equal(stack.image, volume.astype(np.float32))
    np.testing.assert_array_equal(stack.masks, masks)
    day = phantom_day_numbers(TINY, 0)[1]
    assert stack.ids[0] == f"case1_day{day}_slice_0001" and stack.spacing == spacing
    assert stack.case == "case1" and stack.slice_numbers[0] == 1


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def test_never_writes_over_a_folder_it_did_not_write(tmp_path):
    from gitract.utils.outputs import OutputFolderError

    config = replace(TINY, n_cases=1, n_days=1, n_slices=4)
    out = tmp_path / "thesis"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.tex").write_text("chapter 1")
    (out / "sub" / "notes.txt").write_text("notes")
    before = _tree(out)
    for flags in ({}, {"overwrite": True}):  # --overwrite replaces only a phantom
        with pytest.raises(OutputFolderError, match="not written by gitract.*--force"):
            write_phantom(out, config, **flags)
        assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no temporary left
    # --force writes the phantom beside the user's files and keeps them byte for byte
    write_phantom(out, config, force=True)
    after = _tree(out)
    assert {k: v for k, v in after.items() if k in before} == before
    assert (out / "train.csv").is_file() and (out / "phantom.json").is_file()


def test_overwrite_replaces_only_what_the_phantom_wrote(tmp_path):
    from gitract.utils.outputs import OutputFolderError

    config = replace(TINY, n_cases=1, n_days=1, n_slices=4)
    out = write_phantom(tmp_path / "out", config)
    with pytest.raises(OutputFolderError, match="holds a phantom already.*--overwrite"):
        write_phantom(out, config)
    (out / "notes.txt").write_text("mine")
    stale = out / "train" / "stale.txt"
    stale.write_text("old phantom content")
    write_phantom(out, replace(config, n_slices=5), overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"  # the user's file is kept
    assert not stale.exists()  # the phantom's own folder was replaced whole
    assert len(pd.read_csv(out / "train.csv")) == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (write_phantom(empty, config) / "train.csv").is_file()


def test_a_file_where_the_folder_should_be_is_named(tmp_path):
    from gitract.utils.outputs import OutputFolderError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputFolderError, match=f"{blocker}.*is a file"):
        write_phantom(blocker, TINY)
    with pytest.raises(OutputFolderError, match=f"sub: {blocker} is a file"):
        write_phantom(blocker / "sub", TINY)
    assert blocker.read_text() == "x"


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import gitract.data.phantom._write as writer

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_csv_writer", lambda: boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_phantom(tmp_path / "out", replace(TINY, n_cases=1, n_days=1, n_slices=4))
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_and_reports(tmp_path, capsys):
    from gitract.cli import main

    out = tmp_path / "cli"
    args = [
        "phantom",
        str(out),
        "--cases",
        "1",
        "--days",
        "1",
        "--slices",
        "5",
        "--seed",
        "2",
    ]
    assert main(args) == 0
    assert "5 PNGs" in capsys.readouterr().out
    assert len(pd.read_csv(out / "train.csv")) == 15
    assert main(args) == 2  # refuses to overwrite: one line naming the folder
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out}") and "--overwrite" in err[0]


def test_cli_passes_n_jobs(tmp_path, monkeypatch, capsys):
    import gitract.commands.phantom as command
    from gitract.cli import main

    seen = {}

    def fake_write(out_dir, config, *, overwrite, force, n_jobs):
        seen["n_jobs"] = n_jobs
        return Path(out_dir)

    monkeypatch.setattr(command, "write_phantom", fake_write)
    assert main(["phantom", str(tmp_path / "p"), "--n-jobs", "-1"]) == 0
    assert seen == {"n_jobs": -1}
    with pytest.raises(SystemExit):
        main(["phantom", str(tmp_path / "p"), "--n-jobs", "0"])
    assert "--n-jobs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_cases", 0),
        ("n_slices", 3),
        ("sizes", ((32, 32),)),
        ("empty_fraction", 0.95),
        ("spacings", ()),
        ("max_intensity", (5000.0, 100.0)),
        ("seed", -1),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        PhantomConfig(**{field: value})


def test_generate_rejects_out_of_range_indices():
    with pytest.raises(ValueError, match="case_index"):
        generate_case_day(TINY, 2, 0)
    with pytest.raises(ValueError, match="day_index"):
        generate_case_day(TINY, 0, -1)


def test_kaggle_reader_reads_the_phantom(tiny_dir):
    kaggle = pytest.importorskip("gitract.data.kaggle")
    if not hasattr(kaggle, "read_kaggle_dataset"):
        pytest.skip("gitract.data.kaggle.read_kaggle_dataset not written yet")
    stacks = kaggle.read_kaggle_dataset(tiny_dir)
    assert len(stacks) == 4
    by_key = {s.key: s for s in stacks}
    stack = make_phantom_case(TINY, 1, 1)
    read = by_key[stack.key]
    np.testing.assert_array_equal(read.image, stack.image)
    np.testing.assert_array_equal(read.masks, stack.masks)
    assert read.spacing == stack.spacing
