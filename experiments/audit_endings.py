"""Rerun the bad-input list of issue 25 as a new user would, and count how each run ends.

Every case builds its own inputs in a scratch folder, runs ``python -m gitract ...`` in a
fresh process, and is classed:

- **lost**: a file the user owned (watched before the run) changed or disappeared;
- **unexpected**: exit status 1, a traceback, or ``error: unexpected``;
- **clean**: what the case expects (for an error: exit 2, exactly one ``error:`` line on
  stderr naming the expected file or key, no new run folder; for a warning or a help text:
  the words expected);
- **unclear**: anything else (the line printed is quoted in the table).

Usage::

    .venv/bin/python experiments/audit_endings.py [--out reports/audit_endings] [--keep DIR]

Writes ``<out>.md`` and ``<out>.json`` (atomically) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from gitract.paths import REPO_ROOT
from gitract.utils.io import write_text_atomic

PY = sys.executable

TINY = """\
name: {name}
seed: {seed}
data:
  kind: phantom
  path: {path}
split: {{n_folds: 1, n_test: 1, test_fraction: null, val_fraction: 0.5}}
report: {{n_example_slices: 1}}
tracks:
  - name: rf-33
    kind: blocks
    params: {{classifier: rf, block_size: 33, step: 8, n_per_class: 10, background_cap: 20,
             model_params: {{n_estimators: 5, n_jobs: 1}}}}
  - name: cnn-33
    kind: cnn
    params: {{block_size: 33, step: 8, n_per_class: 10, background_cap: 20,
             model_params: {{channels: [4, 8, 8], hidden: 8, max_epochs: 1, num_threads: 1}}}}
"""


@dataclass
class Case:
    """One run of the list: its group, what it tries, and what a clean ending shows."""

    group: str
    name: str
    argv: Callable[[Path], list[str]]
    expect: str = "error"  # "error", "ok" (exit 0) or "any" (exit 0 or 2)
    words: tuple[str, ...] = ()  # each must appear in the output (stderr + stdout)
    watch: Callable[[Path], list[Path]] = lambda w: []
    no_new: Callable[[Path], list[Path]] = lambda w: []  # folders that must not appear
    signal_when: Callable[[Path], bool] | None = None  # send SIGTERM once this holds
    stream: str = "stderr"


@dataclass
class Result:
    case: Case
    rc: int
    out: str
    err: str
    verdict: str = ""
    why: list[str] = field(default_factory=list)


def _snapshot(paths: list[Path]) -> dict[str, bytes | None]:
    snap = {}
    for root in paths:
        items = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        for p in items:
            snap[str(p)] = p.read_bytes() if p.is_file() else None
        if not root.exists():
            snap[str(root)] = b"<missing>"
    return snap


def _run(argv: list[str], env: dict, cwd: Path,
         signal_when: Callable[[Path], bool] | None) -> tuple:
    cmd = [PY, "-m", "gitract", *argv]
    if signal_when is None:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=600)
        return done.returncode, done.stdout, done.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not signal_when(cwd) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGTERM while the run works, not after it ended
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _judge(res: Result, before: dict, after: dict, new: list[Path]) -> None:
    case, text = res.case, res.err + res.out
    lost = [k for k, v in before.items() if after.get(k) != v]
    if lost:
        res.verdict, res.why = "lost", [f"changed or gone: {', '.join(lost[:3])}"]
        return
    if res.rc == 1 or "Traceback" in text or "error: unexpected" in text:
        res.verdict, res.why = "unexpected", [f"exit {res.rc}"]
        return
    why = []
    lines = [line for line in res.err.splitlines() if line.strip()]
    if case.expect == "error":
        if res.rc != 2:
            why.append(f"exit {res.rc}, not 2")
        errors = [line for line in lines if line.startswith("error:")]
        if len(errors) != 1:
            why.append(f"{len(errors)} error lines")
    elif case.expect == "ok" and res.rc != 0:
        why.append(f"exit {res.rc}, not 0")
    elif case.expect == "signal" and (res.rc not in (130, 143, -15) or len(lines) != 1):
        why.append(f"exit {res.rc}, {len(lines)} stderr lines")
    why += [f"no {w!r}" for w in case.words if w.lower() not in text.lower()]
    why += [f"{p} was created" for p in new]
    res.verdict, res.why = ("unclear", why) if why else ("clean", [])


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _png(path: Path, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.arange(size * size).reshape(size, size) % 4000).astype(np.uint16)
                    ).save(path)


def _setup(work: Path, env: dict) -> None:
    """The shared inputs: a small phantom, a trained run, user folders."""
    ph = work / "phantom"
    subprocess.run([PY, "-m", "gitract", "phantom", str(ph), "--cases", "3", "--days", "1",
                    "--slices", "6", "--seed", "1"], check=True, env=env, capture_output=True)
    for name, seed in (("a", 0), ("b", 1)):
        (work / f"{name}.yaml").write_text(TINY.format(name=f"run-{name}", seed=seed, path=ph))
    subprocess.run([PY, "-m", "gitract", "compare", str(work / "a.yaml"), "--out",
                    str(work / "run-a"), "--no-progress"], check=True, env=env,
                   capture_output=True)
    # A one-fold training run on the Kaggle layout, for predict.
    done = subprocess.run([PY, "-m", "gitract", "blocks", "train", "--data", "kaggle", "--path",
                           str(ph), "--block-size", "9", "--out", str(work / "trained"),
                           "--no-progress"], check=True, env=env, capture_output=True,
                          text=True, cwd=work)
    suggested = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines()
                 if line.startswith("predict:")]
    (work / "suggested.txt").write_text(suggested[0] if suggested else "")
    thesis = work / "thesis"
    (thesis / "sub").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("\\chapter{One}\n")
    (thesis / "sub" / "notes.txt").write_text("notes\n")
    mine = work / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own report\n")
    quick = work / "reports" / "quick"
    shutil.copytree(REPO_ROOT / "reports" / "quick", quick,
                    ignore=shutil.ignore_patterns("steps", "figures"))
    (work / "empty.yaml").write_text("")
    (work / "nocsv").mkdir()
    shutil.copytree(ph / "train", work / "nocsv" / "train")
    _variant(work, ph, "badrle", csv=lambda t: t.replace(",\n", ",1 2 3\n", 1))
    bad_png = _variant(work, ph, "badpng")
    first = sorted((bad_png / "train").rglob("*.png"))[0]
    first.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    empty_case = _variant(work, ph, "emptycase")
    (empty_case / "train" / "case9").mkdir()
    loop = _variant(work, ph, "loop")
    scans = sorted((loop / "train").rglob("scans"))[0]
    link = scans / "slice_0099_64_64_1.50_1.50.png"
    os.symlink(link, link)
    scansfile = _variant(work, ph, "scansfile")
    scans = sorted((scansfile / "train").rglob("scans"))[0]
    shutil.rmtree(scans)
    scans.write_text("not a folder")
    trainfile = work / "trainfile"
    trainfile.mkdir()
    shutil.copy(ph / "train.csv", trainfile / "train.csv")
    (trainfile / "train").write_text("not a folder")
    (work / "afile.txt").write_text("a file\n")
    (work / "utf16.csv").write_bytes("id,class,predicted\n".encode("utf-16"))
    pairs = work / "pairs"
    _png(pairs / "images" / "a.png")
    _png(pairs / "masks" / "a.png")
    # predict --allow-gaps: a slice removed, train.csv still has its rows
    gaps = _variant(work, ph, "gaps")
    (gaps / "train").rename(gaps / "test")
    victim = sorted((gaps / "test").rglob("*.png"))[2]
    victim.unlink()
    for name, text in (("null.yaml", "name: x\ndata: null\ntracks: [{name: r, kind: blocks}]\n"),
                       ("dup.yaml", "name: x\nseed: 0\nseed: 1\n"
                                    "tracks: [{name: r, kind: blocks}]\n"),
                       ("notracks.yaml", "name: x\ntracks: []\n")):
        (work / name).write_text(text)


def _variant(work: Path, ph: Path, name: str, csv: Callable[[str], str] | None = None) -> Path:
    out = work / name
    shutil.copytree(ph, out)
    if csv is not None:
        path = out / "train.csv"
        path.write_text(csv(path.read_text()))
    return out


def _config(work: Path, name: str, data: Path) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(TINY.format(name=name, seed=0, path=data))
    return path


def cases() -> list[Case]:
    """The list of issue 25, one case per line of it."""
    return [
        # -------------------------------------------------------------- lost data (4)
        Case("lost", "phantom DIR --overwrite on a folder of the user's files",
             lambda w: ["phantom", str(w / "thesis"), "--overwrite"], words=("thesis",),
             watch=lambda w: [w / "thesis"]),
        Case("lost", "compare --out DIR holding the user's report.md",
             lambda w: ["compare", str(w / "a.yaml"), "--out", str(w / "mine")],
             words=("mine", "--force"), watch=lambda w: [w / "mine"]),
        Case("lost", "compare --out RUN of another config",
             lambda w: ["compare", str(w / "b.yaml"), "--out", str(w / "run-a")],
             words=("run-a", "seed"), watch=lambda w: [w / "run-a"]),
        Case("lost", "an empty config without --out (reports/quick exists)",
             lambda w: ["compare", str(w / "empty.yaml")], words=("empty.yaml",),
             watch=lambda w: [w / "reports" / "quick"]),
        # ------------------------------------------------------------- unexpected (8)
        Case("unexpected", "compare: data.path holds no train.csv",
             lambda w: ["compare", str(_config(w, "nocsv", w / "nocsv")), "--out",
                        str(w / "r-nocsv")], words=("train.csv",),
             no_new=lambda w: [w / "r-nocsv"]),
        Case("unexpected", "blocks train --path on data without masks",
             lambda w: ["blocks", "train", "--data", "kaggle", "--path", str(w / "nocsv"),
                        "--out", str(w / "r-nomask")], words=("nocsv",),
             no_new=lambda w: [w / "r-nomask"]),
        Case("unexpected", "compare --device cuda without CUDA",
             lambda w: ["compare", str(w / "a.yaml"), "--out", str(w / "r-cuda"), "--device",
                        "cuda"], words=("cuda",), no_new=lambda w: [w / "r-cuda"]),
        Case("unexpected", "compare --scheduler with a malformed address",
             lambda w: ["compare", str(w / "a.yaml"), "--out", str(w / "r-sched"),
                        "--scheduler", "not an address"], words=("scheduler",),
             no_new=lambda w: [w / "r-sched"]),
        Case("unexpected", "score --pred a UTF-16 file",
             lambda w: ["score", "--data-dir", str(w / "phantom"), "--pred",
                        str(w / "utf16.csv")], words=("utf16.csv",)),
        Case("unexpected", "predict --threads 0",
             lambda w: ["predict", str(w / "trained"), "--data-dir", str(w / "phantom"),
                        "--images-subdir", "train", "--out", str(w / "s0.csv"), "--threads",
                        "0"], words=("--threads",), stream="stderr"),
        Case("unexpected", "phantom --cases 0",
             lambda w: ["phantom", str(w / "p0"), "--cases", "0"], words=("--cases",),
             no_new=lambda w: [w / "p0"]),
        Case("unexpected", "phantom --slices -1",
             lambda w: ["phantom", str(w / "p1"), "--slices", "-1"], words=("--slices",),
             no_new=lambda w: [w / "p1"]),
        # --------------------------------------------------------- unclear endings
        Case("unclear", "validate a folder without train.csv: says no mask was checked",
             lambda w: ["validate", str(w / "nocsv")], expect="any", words=("train.csv",)),
        Case("unclear", "an empty case folder is named",
             lambda w: ["validate", str(w / "emptycase")], expect="any", words=("case9",)),
        Case("unclear", "a self-looping symlink named like a slice is named",
             lambda w: ["validate", str(w / "loop")], expect="any", words=("slice_0099",)),
        Case("unclear", "data: null is an error",
             lambda w: ["compare", str(w / "null.yaml"), "--out", str(w / "r-null")],
             words=("data",), no_new=lambda w: [w / "r-null"]),
        Case("unclear", "a duplicated YAML key is an error",
             lambda w: ["compare", str(w / "dup.yaml"), "--out", str(w / "r-dup")],
             words=("seed",), no_new=lambda w: [w / "r-dup"]),
        Case("unclear", "tracks: [] is an error",
             lambda w: ["compare", str(w / "notracks.yaml"), "--out", str(w / "r-nt")],
             words=("tracks",), no_new=lambda w: [w / "r-nt"]),
        Case("unclear", "scans is a file: named as a file",
             lambda w: ["validate", str(w / "scansfile")], expect="any",
             words=("scans", "file")),
        Case("unclear", "train is a file: named as a file",
             lambda w: ["validate", str(w / "trainfile")], words=("train", "is a file")),
        Case("unclear", "--out under a file: named, no temporary file named",
             lambda w: ["compare", str(w / "a.yaml"), "--out", str(w / "afile.txt" / "r")],
             words=("afile.txt", "is a file"), watch=lambda w: [w / "afile.txt"]),
        Case("unclear", "phantom --overwrite on a phantom replaces it (no ask for --overwrite)",
             lambda w: ["phantom", str(w / "phantom"), "--cases", "3", "--days", "1",
                        "--slices", "6", "--seed", "1", "--overwrite"], expect="ok",
             stream="stdout", words=("wrote phantom",)),
        Case("unclear", "predict --fold 3 on a one-fold run names the folds",
             lambda w: ["predict", str(w / "trained"), "--fold", "3", "--data-dir",
                        str(w / "phantom"), "--images-subdir", "train", "--out",
                        str(w / "s3.csv")], words=("fold",)),
        Case("unclear", "compare with a bad RLE row: no run folder left",
             lambda w: ["compare", str(_config(w, "badrle", w / "badrle")), "--out",
                        str(w / "r-badrle")], words=("train.csv",),
             no_new=lambda w: [w / "r-badrle"]),
        Case("unclear", "compare with a corrupt PNG: no run folder left",
             lambda w: ["compare", str(_config(w, "badpng", w / "badpng")), "--out",
                        str(w / "r-badpng")], words=(".png",),
             no_new=lambda w: [w / "r-badpng"]),
        Case("unclear", "validate with problems exits 2",
             lambda w: ["validate", str(w / "badrle")], words=("train.csv",)),
        Case("unclear", "SIGTERM ends like Ctrl-C (one line)",
             lambda w: ["compare", str(_config(w, "term", w / "phantom")), "--out",
                        str(w / "r-term")], expect="signal", words=("interrupted",),
             signal_when=lambda w: "training on" in _text(w / "r-term" / "log.txt")),
        # --------------------------------------------------------- newcomer stumbles
        Case("newcomer", "the predict command blocks train suggests runs as printed",
             lambda w: shlex.split((w / "suggested.txt").read_text())[1:], expect="ok",
             stream="stdout", words=("wrote",)),
        Case("newcomer", "predict --help explains --fold",
             lambda w: ["predict", "--help"], expect="ok", stream="stdout",
             words=("--fold", "fold whose")),
        Case("newcomer", "blocks predict takes --allow-gaps --fold --device --threads",
             lambda w: ["blocks", "predict", "--help"], expect="ok", stream="stdout",
             words=("--allow-gaps", "--fold", "--device", "--threads")),
        Case("newcomer", "validate --kind exists",
             lambda w: ["validate", "--help"], expect="ok", stream="stdout",
             words=("--kind",)),
        Case("newcomer", "validate on an image/mask-pair folder suggests --kind",
             lambda w: ["validate", str(w / "pairs")], words=("--kind",)),
        Case("newcomer", "predict --allow-gaps with truth rows of a removed slice",
             lambda w: ["predict", str(w / "trained"), "--data-dir", str(w / "gaps"),
                        "--out", str(w / "sgaps.csv"), "--allow-gaps"], expect="ok",
             stream="stdout", words=("wrote",)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "audit_endings")
    parser.add_argument("--keep", type=Path, default=None,
                        help="scratch folder to keep (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="audit_")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GITRACT_CACHE": str(work / "cache"),
           "GITRACT_REPORTS": str(work / "reports"), "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    _setup(work, env)
    results = []
    for case in cases():
        argv_ = case.argv(work)
        before = _snapshot(case.watch(work))
        rc, out, err = _run([*argv_, "--no-progress"] if argv_[-1] != "--help" else argv_,
                            env, work, case.signal_when)
        new = [p for p in case.no_new(work) if p.exists()]
        res = Result(case, rc, out, err)
        _judge(res, before, _snapshot(case.watch(work)), new)
        results.append(res)
        first = (err if case.stream == "stderr" else out).strip().splitlines()
        print(f"{res.verdict:10s} {case.group:10s} {case.name}: exit {rc}: "
              f"{first[-1][:160] if first else ''}", flush=True)
    counts = Counter(r.verdict for r in results)
    rows = [{"group": r.case.group, "case": r.case.name, "exit": r.rc, "verdict": r.verdict,
             "why": "; ".join(r.why),
             "line": ((r.err if r.case.stream == "stderr" else r.out).strip().splitlines()
                      or [""])[-1][:300].replace(str(work), "<work>")} for r in results]
    summary = {"counts": {k: counts.get(k, 0) for k in ("clean", "unclear", "unexpected",
                                                        "lost")},
               "n": len(results), "seconds": round(time.perf_counter() - start, 1),
               "cases": rows}
    lines = ["# Bad-input audit (issue 25's list)", "",
             "`python experiments/audit_endings.py`: each case in a fresh process on inputs it "
             "builds itself. " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items())
             + f" of {len(results)} ({summary['seconds']:.0f} s).", "",
             "| group | case | exit | verdict | last line (stderr, or stdout for help/ok) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['group']} | {r['case']} | {r['exit']} | {r['verdict']}"
              f"{' (' + r['why'] + ')' if r['why'] else ''} | `{r['line'].replace('|', '/')}` |"
              for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_text_atomic(args.out.with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["counts"]))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
