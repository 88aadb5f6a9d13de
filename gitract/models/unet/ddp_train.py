"""Train the U-Net on one or several processes: ``python -m gitract.models.unet.ddp_train``.

Usage::

    torchrun --standalone --nproc_per_node N -m gitract.models.unet.ddp_train \\
        KIND PATH --train CASE [CASE ...] [--val CASE ...] [--slice-step S] \\
        [--params unet.yaml] [--set KEY=VALUE ...] --out DIR

or the same without ``torchrun`` (one process). ``KIND PATH`` name a dataset as
:func:`gitract.data.index.index_dataset` reads it (``phantom`` writes the default phantom
to ``PATH`` when it is absent); ``--params`` is a YAML mapping of
:class:`~gitract.models.unet.UNetConfig` fields and ``--set`` overrides one field.

Every process trains (DistributedDataParallel: NCCL on GPUs, each process the GPU of its
``LOCAL_RANK``; gloo on CPU processes), ``batch_size`` is the batch over all processes
and the budget counts optimiser steps, so N changes the speed, not the result's recipe.
Rank 0 prepares the training slices for all, and alone writes ``DIR/unet.pt``
(:meth:`UNetSegmenter.save`) and ``DIR/fit.json``. Each process prints one JSON line:
``rank``, ``world_size``, ``steps``, ``best_val_dice``, ``seconds`` and ``weights_sha1``
(a digest of its parameters and buffers: equal on every rank when they trained in step).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
import yaml

from gitract.data.index import index_dataset
from gitract.models.train_torch import distributed_session
from gitract.models.unet._config import UNetConfig
from gitract.models.unet._segmenter import UNetSegmenter
from gitract.utils.io import write_text_atomic

__all__ = ["main", "weights_digest"]


def weights_digest(net: torch.nn.Module) -> str:
    """SHA-1 of a module's state (every parameter and buffer, in key order)."""
    h = hashlib.sha1()
    for key, value in net.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _parse(value: str):
    out = yaml.safe_load(value)
    if isinstance(out, str):  # YAML 1.1 reads 6e-3 as a string
        try:
            return float(out)
        except ValueError:
            pass
    return out


def _index(kind: str, path: str, slice_step: int):
    return index_dataset(kind, path).restrict(slice_step=slice_step)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m gitract.models.unet.ddp_train",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("kind", help="dataset kind (phantom, kaggle, uwmgi_derived, ...)")
    parser.add_argument("path", help="dataset folder")
    parser.add_argument("--train", nargs="+", required=True, metavar="CASE")
    parser.add_argument("--val", nargs="*", default=[], metavar="CASE")
    parser.add_argument("--slice-step", type=int, default=1)
    parser.add_argument("--params", help="YAML file of UNetConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", required=True, help="folder for unet.pt and fit.json")
    args = parser.parse_args(argv)

    params = {}
    if args.params:
        params = yaml.safe_load(Path(args.params).read_text()) or {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set wants KEY=VALUE, got {item!r}")
        params[key] = _parse(value)
    config = UNetConfig.from_dict({"progress": False, **params})

    with distributed_session(config.device) as (rank, n_proc):
        if n_proc > 1 and rank != 0:
            torch.distributed.barrier()  # rank 0 may be writing the phantom
        index = _index(args.kind, args.path, args.slice_step)
        if n_proc > 1 and rank == 0:
            torch.distributed.barrier()
        missing = sorted(set(args.train + args.val) - set(index.cases()))
        if missing:
            raise SystemExit(f"cases not in the dataset: {missing}")
        seg = UNetSegmenter(config).fit(
            [index.source(k) for k in index.keys_of(args.train)],
            [index.source(k) for k in index.keys_of(args.val)] or None)
        h = seg.history_
        line = {"rank": rank, "world_size": n_proc, "steps": h.steps,
                "best_val_dice": h.best_value, "seconds": h.seconds,
                "weights_sha1": weights_digest(seg.net_)}
        if rank == 0:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            seg.save(out / "unet.pt")
            write_text_atomic(out / "fit.json", json.dumps(
                {**line, "fit_seconds": seg.fit_seconds_, "history": h.to_dict()}, indent=1))
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
