"""Time and memory of the data stages on a phantom of the full Kaggle size.

The phantom has the size of the UW-Madison training set: 85 cases x 3 days x 151 slices
(38,505 slices, about 3e9 pixels) in the four Kaggle image sizes
(``gitract.data.phantom.KAGGLE_SIZES``); ``--scale`` keeps that fraction of the cases
(at least one) for a quick try. It is written once with ``gitract phantom`` into
``--out-data`` (default ``$GITRACT_CACHE/bench_kaggle_size/phantom_cN_d3_s151``, git
ignores the default cache folder) and reused while its ``phantom.json`` matches and
every PNG is there; the figures of the run that wrote it are kept beside it
(``<out-data>.write.json``) and reported again.

Then each stage runs in a fresh process:

- ``validate``: ``gitract validate DATA`` (reads every PNG and decodes every RLE row);
- ``index``: ``gitract.data.index.index_dataset("kaggle", DATA)``, then every scan read
  once through ``index.read(key)`` and dropped.

For each: wall time, CPU time, peak RSS (the largest resident set of the stage's
process or of any process it waited for, from ``os.wait4``, as
``resource.getrusage(RUSAGE_CHILDREN)`` reports it but for that stage alone) and slices
per second. The page cache is left as it is: the data were just written or read, so the
stages read from memory rather than disk.

Usage::

    .venv/bin/python experiments/bench_kaggle_size.py [--scale 0.02] [--n-jobs 1]
        [--out-data DIR] [--out reports/bench_kaggle_size] [--rewrite] [--json]

Writes ``<out>.md`` and ``<out>.json`` atomically (default ``reports/bench_kaggle_size``
at full size, ``reports/_scratch/bench_kaggle_size_scale<S>`` otherwise) and prints the
table; with ``--json`` the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from gitract.data.phantom import PhantomConfig
from gitract.paths import REPO_ROOT, cache_dir
from gitract.utils.io import write_text_atomic

FULL_CASES, DAYS, SLICES = 85, 3, 151


def _config(scale: float) -> PhantomConfig:
    return PhantomConfig(
        n_cases=max(1, round(FULL_CASES * scale)), n_days=DAYS, n_slices=SLICES
    )


def _expected_slices(config: PhantomConfig) -> int:
    return config.n_cases * config.n_days * config.n_slices


def _is_complete(data: Path, config: PhantomConfig) -> bool:
    """The phantom of ``config`` is there, whole (``write_phantom`` is all-or-nothing)."""
    info = data / "phantom.json"
    if not info.is_file() or not (data / "train.csv").is_file():
        return False
    written = json.loads(info.read_text()).get("config", {})
    if written != json.loads(json.dumps(asdict(config))):
        return False
    n_png = sum(1 for _ in (data / "train").glob("case*/case*_day*/scans/*.png"))
    return n_png == _expected_slices(config)


def _measure(argv: list[str], log: Path) -> dict:
    """Run ``argv`` in a fresh process; wall and CPU time, peak RSS, exit code."""
    with open(log, "wb") as fh:
        actions = [
            (os.POSIX_SPAWN_DUP2, fh.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, fh.fileno(), 2),
        ]
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        # Linux reports ru_maxrss in KiB
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rc": os.waitstatus_to_exitcode(status),
        "command": shlex.join(
            [Path(argv[0]).name if a == sys.executable else a for a in argv]
        ),
    }


def _fail(step: str, result: dict, log: Path) -> None:
    tail = log.read_text(errors="replace").splitlines()[-20:]
    sys.stderr.write(f"{step} failed (exit {result['rc']}):\n" + "\n".join(tail) + "\n")


def _last_json(log: Path) -> dict:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _pixels(config: PhantomConfig, data: Path) -> int:
    """Pixels of the written PNGs, from their names (first slice of every scan)."""
    total = 0
    for scans in (data / "train").glob("case*/case*_day*/scans"):
        first = next(scans.glob("slice_0001_*.png"))
        w, h = (int(v) for v in first.name.split("_")[2:4])
        total += w * h * config.n_slices
    return total


def _child_index(data: str) -> int:
    """The ``index`` stage, run in its own process: prints one JSON line."""
    import resource

    from gitract.data.index import index_dataset

    start = time.perf_counter()
    index = index_dataset("kaggle", data)
    t_index = time.perf_counter() - start
    rss_index = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_scans = n_slices = 0
    for key in index.keys():
        stack = index.read(key)
        n_scans += 1
        n_slices += stack.n_slices
        del stack
    t_read = time.perf_counter() - start - t_index
    print(json.dumps({
        "n_scans": n_scans,
        "n_slices": n_slices,
        "index_s": round(t_index, 2),
        "read_s": round(t_read, 2),
        "peak_rss_after_index_mb": round(rss_index, 1),
    }))
    return 0


def _git_sha() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
            text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _row(name: str, r: dict | None, n_slices: int, note: str) -> str:
    if r is None:
        return f"| {name} | - | - | - | - | {note} |"
    rate = n_slices / r["wall_s"] if r["wall_s"] else float("nan")
    return (
        f"| {name} | {r['wall_s']:,.1f} | {r['cpu_s']:,.1f} | {r['peak_rss_mb']:,.0f} | "
        f"{rate:,.0f} | {note} |"
    )


def _table(report: dict) -> str:
    d, steps = report["data"], report["steps"]
    write = steps.get("write")
    lines = [
        f"# Data stages on a phantom of {d['scale']:g} x the Kaggle size",
        "",
        f"Phantom of {d['n_cases']} cases x {d['n_days']} days x {d['n_slices_per_scan']} "
        f"slices = {d['n_slices']:,} slices, {d['pixels']:,} pixels, sizes drawn from "
        f"{', '.join(f'{w}x{h}' for w, h in d['sizes'])} (WxH), {d['bytes'] / 2**30:.2f} GiB "
        f"on disk. Machine: {report['machine']['cpus']} CPUs, Python "
        f"{report['machine']['python']}, 15-min load average "
        f"{report['machine']['loadavg_1_5_15_after'][2]} at the end (other work shares "
        f"the CPUs); git {report['git_sha']}. Each stage in a fresh "
        "process; peak RSS of the largest process of the stage (`os.wait4`); page cache "
        "warm.",
        "",
        "| stage | wall s | CPU s | peak RSS MB | slices/s | notes |",
        "|---|---|---|---|---|---|",
    ]
    if write is None:
        lines.append(_row("write phantom", None, d["n_slices"], "no record of the write"))
    else:
        note = f"`--n-jobs {write['n_jobs']}`" + (
            f"; reused, measured {write['date']}" if write.get("reused") else ""
        )
        lines.append(_row("write phantom", write, d["n_slices"], note))
    v = steps.get("validate")
    if v is not None:
        lines.append(_row(
            "gitract validate", v, d["n_slices"],
            f"{v.get('problems', '?')} problem(s); exit {v['rc']}",
        ))
    ix = steps.get("index")
    if ix is not None and "skipped" in ix:
        lines.append(_row("index + read every scan", None, d["n_slices"], ix["skipped"]))
    elif ix is not None:
        lines.append(_row(
            "index + read every scan", ix, d["n_slices"],
            f"index {ix.get('index_s', '?')} s (peak RSS "
            f"{ix.get('peak_rss_after_index_mb', '?')} MB), reads {ix.get('read_s', '?')} "
            f"s, {ix.get('n_scans', '?')} scans",
        ))
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-index"]:
        return _child_index(argv[1])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the 85 cases to write (default 1: full size)")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="worker processes writing the phantom (default 1)")
    parser.add_argument("--out-data", type=Path, default=None,
                        help="phantom folder (default under $GITRACT_CACHE or cache/)")
    parser.add_argument("--rewrite", action="store_true",
                        help="write the phantom again even when it is there")
    parser.add_argument("--stages", nargs="+", choices=("validate", "index"),
                        default=["validate", "index"], help="stages to measure")
    parser.add_argument("--out", type=Path, default=None,
                        help="output stem: <out>.md and <out>.json")
    parser.add_argument("--json", action="store_true",
                        help="last stdout line: one JSON object")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    config = _config(args.scale)
    name = f"phantom_c{config.n_cases}_d{config.n_days}_s{config.n_slices}"
    data = args.out_data or cache_dir() / "bench_kaggle_size" / name
    data = data.resolve()
    if args.out is None:
        args.out = (Path("reports/bench_kaggle_size") if config.n_cases == FULL_CASES
                    else Path(f"reports/_scratch/bench_kaggle_size_scale{args.scale:g}"))
    record = data.with_name(data.name + ".write.json")
    py = sys.executable
    steps: dict = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_kaggle_size.") as tmp:
        logs = Path(tmp)
        if args.rewrite or not _is_complete(data, config):
            if data.is_dir() and any(data.iterdir()) and not (data / "phantom.json").is_file():
                parser.error(f"{data} holds something other than a phantom; not replacing it")
            print(f"writing {_expected_slices(config):,} slices to {data} "
                  f"(n_jobs {args.n_jobs}) ...", flush=True)
            cmd = [py, "-m", "gitract", "phantom", str(data), "--cases",
                   str(config.n_cases), "--days", str(config.n_days), "--slices",
                   str(config.n_slices), "--seed", str(config.seed), "--n-jobs",
                   str(args.n_jobs), "--overwrite"]
            r = _measure(cmd, logs / "write.log")
            if r["rc"] != 0:
                _fail("write", r, logs / "write.log")
                return 1
            write = {**r, "n_jobs": args.n_jobs,
                     "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "loadavg_1_5_15_after": [round(v, 2) for v in os.getloadavg()]}
            write_text_atomic(record, json.dumps(write, indent=2) + "\n")
            steps["write"] = {**write, "reused": False}
        elif record.is_file():
            steps["write"] = {**json.loads(record.read_text()), "reused": True}
        else:
            steps["write"] = None
        n_slices = _expected_slices(config)

        if "validate" in args.stages:
            print("validate ...", flush=True)
            log = logs / "validate.log"
            r = _measure([py, "-m", "gitract", "validate", str(data)], log)
            out = log.read_text(errors="replace").splitlines()
            problems = [line for line in out if line.startswith("problems:")]
            r["problems"] = int(problems[0].split()[1]) if problems else None
            r["summary"] = out[:6]
            if r["problems"] is None:
                _fail("validate", r, log)
            steps["validate"] = r

        if "index" in args.stages:
            try:
                import gitract.data.index  # noqa: F401
            except ImportError:
                steps["index"] = {"skipped": "gitract.data.index is not in this checkout"}
            else:
                print("index + read ...", flush=True)
                log = logs / "index.log"
                r = _measure([py, str(Path(__file__).resolve()), "--child-index",
                              str(data)], log)
                if r["rc"] != 0:
                    _fail("index", r, log)
                r.update(_last_json(log))
                steps["index"] = r

    report = {
        "benchmark": "bench_kaggle_size",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_sha": _git_sha(),
        "command": shlex.join(["python", "experiments/bench_kaggle_size.py",
                               *argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    # other work on the machine slows the stages: read the load
                    "loadavg_1_5_15_before": [round(v, 2) for v in load_before],
                    "loadavg_1_5_15_after": [round(v, 2) for v in os.getloadavg()]},
        "data": {
            "path": str(data),
            "scale": config.n_cases / FULL_CASES,
            "n_cases": config.n_cases,
            "n_days": config.n_days,
            "n_slices_per_scan": config.n_slices,
            "n_slices": n_slices,
            "sizes": [list(s) for s in config.sizes],
            "spacings": list(config.spacings),
            "pixels": _pixels(config, data),
            "bytes": _dir_bytes(data),
        },
        "steps": steps,
    }
    for step in steps.values():
        if step and step.get("wall_s"):
            step["slices_per_s"] = round(n_slices / step["wall_s"], 1)
    table = _table(report)
    write_text_atomic(f"{args.out}.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(f"{args.out}.md", table)
    print(table)
    if args.json:
        print(json.dumps(report))
    failed = [k for k, s in steps.items() if s and s.get("rc", 0) != 0 and k != "validate"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
