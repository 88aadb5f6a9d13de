"""``gitract compare CONFIG [--out DIR] [--seed N]``: every track, one split, one report."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config (e.g. experiments/configs/quick.yaml)")
    parser.add_argument("--out", default=None, help="run folder (default reports/<config name>)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="workers for the per-scan stages (joblib processes, or the "
                             "workers of a Dask LocalCluster with --backend dask)")
    parser.add_argument("--backend", choices=("joblib", "dask"), default=None,
                        help="where per-scan stages run (default: the config's parallel.backend)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler (implies --backend dask)")


def run(args: argparse.Namespace) -> int:
    import time

    from gitract.compare import run_comparison
    from gitract.compare._run import resolve_out_dir
    from gitract.config import load_config

    overrides = {} if args.seed is None else {"seed": args.seed}
    config = load_config(args.config, overrides=overrides)
    parallel = {k: v for k, v in (("n_jobs", args.n_jobs), ("backend", args.backend),
                                  ("scheduler", args.scheduler)) if v is not None}
    if args.scheduler is not None:
        parallel["backend"] = "dask"
    if parallel:
        from dataclasses import replace

        config = replace(config, parallel=replace(config.parallel, **parallel))
    out = resolve_out_dir(config, args.out)
    start = time.perf_counter()
    run_comparison(config, out, progress=not args.no_progress, config_path=str(args.config))
    print(f"report: {out / 'report.md'} ({time.perf_counter() - start:.0f} s)")
    return 0
