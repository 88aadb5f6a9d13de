"""``gitract export coco|coco-pred|nnunet``: a dataset, a split or a track's predictions
in another tool's format.

- ``coco DATA_DIR [--split RUN_DIR/splits.json] --out DIR [--fold K] [--kind KIND]``:
  ``DIR/train.json``, ``val.json``, ``test.json`` of the fold (parts without cases are
  skipped; without ``--split`` every case is in ``train.json``): one image per slice (``file_name`` relative to DATA_DIR, height, width, case,
  day, slice) and one compressed-RLE annotation per non-empty class mask, categories in
  the dataset's channel order (``gitract.data.coco_export``).
- ``coco-pred RUN_DIR [--track T] --data-dir D [--part test] [--out DIR]``: the track's
  thresholded masks as COCO results (``image_id``, ``category_id``, ``segmentation``,
  ``score`` = mean probability inside the mask) with the image ids of ``export coco`` on
  the same data, so ``COCO("test.json").loadRes(results)`` and ``COCOeval`` take them.

The data kind is ``--kind``, else the one recorded in the split (``splits.json``'s
``dataset.kind``), else ``kaggle``; scans are read one at a time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gitract.commands.compare import device_name, positive_int
from gitract.commands.predict import add_images_subdir, check_device_flag
from gitract.compare import predict_coco
from gitract.data.coco_export import export_coco, read_split_file, split_parts
from gitract.data.index import index_dataset
from gitract.data.loaders import DATASET_KINDS
from gitract.data.nnunet_export import export_nnunet
from gitract.data.record import DataError
from gitract.utils.outputs import check_output_folder
from gitract.utils.parallel import ParallelConfig
from gitract.utils.progress import progress_bars

EXAMPLES = """examples:
  gitract phantom data/phantom --cases 4 --slices 8
  gitract blocks train --data kaggle --path data/phantom --block-size 9 --out runs/ph
  gitract export coco data/phantom --split runs/ph/splits.json --out coco/phantom
  gitract export coco ../shared/data/uwmgi_derived_512 --split reports/real/splits.json \\
      --fold 1 --out coco/real
  gitract export coco-pred runs/ph --data-dir data/phantom --images-subdir train \\
      --part val --out coco/phantom
  gitract export nnunet data/phantom --out nnunet_raw
  gitract export nnunet ../shared/data/uwmgi_derived_512 --kind uwmgi_derived \\
      --split reports/real/splits.json --out nnunet_raw

Image file names are relative to DATA_DIR. In the Kaggle layout scans are read from
DATA_DIR/train for 'coco' and 'nnunet' (the labelled folder) and DATA_DIR/test for 'coco-pred' (as
every predict command), unless --images-subdir names another folder.
"""

#: Kinds read from a folder given on the command line (others need loader options).
_KAGGLE_KINDS = ("kaggle", "phantom")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` subcommands."""
    parser.epilog = EXAMPLES
    sub = parser.add_subparsers(dest="action", required=True, metavar="FORMAT")
    gt = sub.add_parser("coco", help="a split's slices and masks as COCO JSON, one file per "
                                     "part (train/val/test)", epilog=EXAMPLES)
    gt.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="the dataset folder")
    gt.add_argument("--split", type=Path, default=None,
                    help="a splits.json (a run folder's, from gitract compare); default: "
                         "every case in train.json")
    gt.add_argument("--fold", type=int, default=0, help="fold of the split (default 0)")
    gt.add_argument("--out", type=Path, required=True, help="folder for <part>.json")
    pr = sub.add_parser("coco-pred", help="a trained track's predicted masks as COCO results",
                        epilog=EXAMPLES)
    pr.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                    help="a finished comparison or training run folder")
    pr.add_argument("--track", default=None, help="track name (default: the run's only one)")
    pr.add_argument("--data-dir", type=Path, required=True, help="the dataset folder")
    add_images_subdir(pr)
    pr.add_argument("--fold", type=int, default=0, help="the fold's model (default 0)")
    pr.add_argument("--part", choices=("train", "val", "test"), default=None,
                    help="predict only this part's cases of the run's split (default: "
                         "every scan)")
    pr.add_argument("--out", type=Path, default=None,
                    help="folder for <track>_fold<K>_<part>.json (default RUN_DIR/coco)")
    pr.add_argument("--device", type=device_name, default=None,
                    help="override a deep track's saved device (auto, cpu, cuda, mps)")
    pr.add_argument("--threads", type=positive_int, default=None,
                    help="torch CPU threads (a positive int)")
    nn = sub.add_parser("nnunet", help="the dataset as an nnU-Net v2 raw dataset (NIfTI "
                                       "volumes, dataset.json, the split's folds)",
                        epilog=EXAMPLES)
    nn.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="the dataset folder")
    nn.add_argument("--split", type=Path, default=None,
                    help="a splits.json whose folds become splits_final.json (default: "
                         "every case a training case, no folds)")
    nn.add_argument("--out", type=Path, required=True,
                    help="folder for Dataset<ID>_gitract/ (an nnUNet_raw folder)")
    nn.add_argument("--dataset-id", type=int, default=501, choices=range(1, 1000),
                    metavar="N", help="nnU-Net dataset id, 1 to 999 (default 501)")
    for p in (gt, nn):
        p.add_argument("--images-subdir", default="train",
                       help="Kaggle layout: scans folder under DATA_DIR (default: train)")
    for p in (gt, pr, nn):
        p.add_argument("--kind", choices=DATASET_KINDS, default=None,
                       help="data kind (default: the split's dataset kind, else kaggle)")
        p.add_argument("--n-jobs", type=positive_int, default=1,
                       help="worker processes, one scan each (default 1)")
        p.add_argument("--force", action="store_true",
                       help="write into an --out folder that holds other files (files of "
                            "the export's names are replaced, others kept)")


def data_index(data_dir: Path, kind: str | None, dataset: dict, images_subdir: str):
    """The index of ``data_dir`` for ``kind`` (else ``dataset["kind"]``, else kaggle);
    the split's loader options apply when the kind is the split's own."""
    recorded = dataset.get("kind") if isinstance(dataset, dict) else None
    chosen = kind or recorded or "kaggle"
    options = dict(dataset.get("options") or {}) if chosen == recorded else {}
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder")
    if chosen in _KAGGLE_KINDS and not (data_dir / images_subdir).is_dir():
        raise DataError(f"{data_dir / images_subdir}: no such folder (DATA_DIR read in the "
                        f"Kaggle layout; another layout needs --kind, e.g. uwmgi_derived, "
                        f"another scans folder --images-subdir)")
    try:
        if chosen in _KAGGLE_KINDS:
            # The phantom is indexed as what it is on disk: a written phantom is never
            # regenerated here (a wrong DATA_DIR must not become a new dataset).
            options.setdefault("images_subdir", images_subdir)
            return index_dataset("kaggle", data_dir, **options)
        return index_dataset(chosen, data_dir, **options)
    except DataError:
        raise
    except (TypeError, ValueError) as exc:
        raise DataError(f"{data_dir}: cannot read it as {chosen} data ({exc})") from None


def _split_or_whole(split_file: Path | None, fold: int) -> dict:
    """The split of ``split_file`` (checked before any data is read), or ``{}``."""
    if split_file is None:
        return {}
    splits = read_split_file(split_file)
    split_parts(splits, fold=fold, where=str(split_file))
    return splits


def _run_coco(args: argparse.Namespace) -> int:
    splits = _split_or_whole(args.split, args.fold)
    folder = check_output_folder(args.out, kind="coco", command="gitract export coco",
                                 force=args.force, writes=("train.json", "val.json",
                                                           "test.json"))
    index = data_index(args.data_dir, args.kind, splits.get("dataset") or {},
                       args.images_subdir)
    if not splits:  # the plain conversion: every case in train.json
        splits = {"folds": [{"train": index.cases(), "val": [], "test": []}]}
    with progress_bars(not args.no_progress):
        written = export_coco(index, splits, args.out, root=args.data_dir, fold=args.fold,
                              parallel=ParallelConfig(n_jobs=args.n_jobs),
                              where=str(args.split or "the whole dataset"))
    folder.create()  # after the split was checked against the data: nothing is left behind
    for part, item in written.items():
        if part != "skipped":
            print(f"wrote {item['path']}: {item['cases']} cases, {item['images']} images, "
                  f"{item['annotations']} annotations")
    if written["skipped"]:
        print(f"no cases in {', '.join(written['skipped'])} of fold {args.fold}: not written")
    return 0


def _run_coco_pred(args: argparse.Namespace) -> int:
    check_device_flag(args.device)
    split_file = args.run_dir / "splits.json"
    splits = read_split_file(split_file) if split_file.is_file() else {}
    if args.part is not None and not splits:
        raise DataError(f"{split_file}: no such file; --part needs the run's split")
    cases = None
    if args.part is not None:
        cases = split_parts(splits, fold=args.fold, where=str(split_file))[args.part]
        if not cases:
            raise DataError(f"{split_file}: fold {args.fold} has no {args.part} cases")
    out_dir = args.out if args.out is not None else args.run_dir / "coco"
    folder = check_output_folder(out_dir, kind="coco", command="gitract export coco-pred",
                                 force=args.force)
    index = data_index(args.data_dir, args.kind, splits.get("dataset") or {},
                       args.images_subdir)
    if cases is not None:
        missing = sorted(set(cases) - set(index.cases()))
        if missing:
            raise DataError(f"{args.data_dir}: {args.part} case(s) of {split_file} are not in "
                            f"this data ({', '.join(missing[:5])})")
    folder.create()
    with progress_bars(not args.no_progress):
        path, n_slices, n_results = predict_coco(
            args.run_dir, args.track, index, out_dir, fold=args.fold, cases=cases,
            label=args.part or "all", parallel=ParallelConfig(n_jobs=args.n_jobs),
            device=args.device, num_threads=args.threads)
    note = ("; nothing predicted (pycocotools' loadRes cannot read an empty list)"
            if not n_results else "")
    print(f"wrote {path}: {n_results} predicted masks on {n_slices} slices{note}")
    return 0


def _run_nnunet(args: argparse.Namespace) -> int:
    splits = _split_or_whole(args.split, 0)
    name = f"Dataset{args.dataset_id:03d}_gitract"
    folder = check_output_folder(args.out, kind="nnunet", command="gitract export nnunet",
                                 force=args.force, writes=(name,))
    index = data_index(args.data_dir, args.kind, splits.get("dataset") or {},
                       args.images_subdir)
    folder.create()
    with progress_bars(not args.no_progress):
        written = export_nnunet(index, args.out, splits=splits or None,
                                dataset_id=args.dataset_id, where=str(args.split),
                                parallel=ParallelConfig(n_jobs=args.n_jobs))
    print(f"wrote {written['folder']}: {written['training']} training scans, "
          f"{written['test']} test scans, " + (
              f"{written['folds']} folds in splits_final.json (copy it to "
              f"nnUNet_preprocessed/{name}/ after planning)" if written["folds"] else
              "no folds (nnU-Net makes its own, by case-day, not by case: give --split "
              "for case-grouped ones)"))
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the export format."""
    return {"coco": _run_coco, "coco-pred": _run_coco_pred,
            "nnunet": _run_nnunet}[args.action](args)
