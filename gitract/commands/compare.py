"""``gitract compare CONFIG [--out DIR] [--set KEY=VALUE ...]``: every track, one split,
one report.

The config is checked entirely (after ``--seed``, ``--device``, ``--set``) before any data
is read or any folder written. An interrupted run (Ctrl-C) resumes where it stopped when
the same command is run again: finished steps are reused, nothing is recomputed.
"""

from __future__ import annotations

import argparse

from gitract.compare import resolve_out_dir, run_comparison
from gitract.config import ConfigError, load_config, read_config_file
from gitract.models import device_problem
from gitract.tracks import track_kind, track_kinds
from gitract.utils.parallel import scheduler_problem

EXAMPLES = """examples:
  gitract compare experiments/configs/quick.yaml
  gitract compare experiments/configs/kaggle.yaml --set data.path=/data/uwmgi --n-jobs 2
  gitract compare experiments/configs/quick.yaml --set tracks.unet.params.max_steps=100 \\
      --set split.n_test=3 --device cuda -v

--set KEY=VALUE overrides one key of the config (repeatable; the value is read as YAML).
Keys are dotted paths; a track is addressed by its name: tracks.<name>.params.<key>
(or by its position, tracks.0.params.<key>). Ctrl-C stops a run; running the same
command again resumes it without recomputing the finished steps.
"""


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable)."""
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config key, e.g. --set data.path=/data/uwmgi or "
                             "--set tracks.unet.params.max_steps=100 (value read as YAML)")


def add_force_argument(parser: argparse.ArgumentParser) -> None:
    """``--force``: write a run into a folder that is not new, empty or a run of the same
    config."""
    parser.add_argument("--force", action="store_true",
                        help="write into a run folder of another config, or a folder holding "
                             "other files (their files of the run's names are replaced); "
                             "without it such a folder is refused")


def positive_int(text: str) -> int:
    """An argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def device_name(text: str) -> str:
    """An argparse type: auto, cpu, cuda, cuda:N or mps."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config (e.g. experiments/configs/quick.yaml)")
    parser.add_argument("--out", default=None, help="run folder (default reports/<config name>)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    add_set_argument(parser)
    add_force_argument(parser)
    parser.add_argument("--final", action="store_true",
                        help="after the run, score the locked hold-out (split.holdout) once "
                             "into RUN/final; refused when it was scored before with other "
                             "settings, unless --force (the report then says so)")
    parser.add_argument("--device", type=device_name, default=None,
                        help="device of the deep tracks (cnn, unet, unetpp, deeplabv3plus, nnunet): "
                             "auto, cpu, cuda, cuda:N, mps (default: each track's own "
                             "setting)")
    parser.add_argument("--n-jobs", type=positive_int, default=None,
                        help="workers for the per-scan stages (joblib processes, or the "
                             "workers of a Dask LocalCluster with --backend dask)")
    parser.add_argument("--backend", choices=("joblib", "dask"), default=None,
                        help="where per-scan stages run (default: the config's parallel.backend)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler (implies --backend dask)")
    parser.epilog = EXAMPLES


def device_sets(raw_tracks, device: str | None) -> list[str]:
    """``--set`` items that put every deep track of the config on ``device``."""
    if device is None:
        return []
    out = []
    for i, track in enumerate(raw_tracks or []):
        kind = track.get("kind") if isinstance(track, dict) else None
        entry = track_kind(kind) if kind in track_kinds() else None
        if entry is not None and entry.device_key:
            out.append(f"tracks.{i}.params.{entry.device_key}={device}")
    return out


def _check_flags(args: argparse.Namespace, raw_tracks) -> None:
    """``--device`` present on this machine (where a deep track uses it), ``--scheduler``
    well formed and answering: named by their flag, before the config is checked."""
    if args.device is not None and device_sets(raw_tracks, args.device):
        problem = device_problem(args.device)
        if problem is not None:
            raise ConfigError("--device", "", problem)
    if args.scheduler is not None:
        problem = scheduler_problem(args.scheduler)
        if problem is not None:
            raise ConfigError("--scheduler", "", problem)


def run(args: argparse.Namespace) -> int:
    import time

    raw_tracks = read_config_file(args.config).get("tracks")
    _check_flags(args, raw_tracks)
    overrides = {} if args.seed is None else {"seed": args.seed}
    parallel = {k: v for k, v in (("n_jobs", args.n_jobs), ("backend", args.backend),
                                  ("scheduler", args.scheduler)) if v is not None}
    if args.scheduler is not None:
        parallel["backend"] = "dask"
    sets = [f"parallel.{k}={v}" for k, v in parallel.items()]
    sets += device_sets(raw_tracks, args.device)
    config = load_config(args.config, overrides=overrides, sets=[*sets, *args.sets])
    out = resolve_out_dir(config, args.out)
    args.run_dir_ = out  # where an interrupted run resumes (see gitract.cli)
    start = time.perf_counter()
    run_comparison(config, out, progress=not getattr(args, "no_progress", False),
                   config_path=str(args.config), force=args.force, final=args.final)
    print(f"report: {out / 'report.md'} ({time.perf_counter() - start:.0f} s)")
    return 0
