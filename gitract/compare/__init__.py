"""The comparison run: every track on one case-grouped split, one tuning rule, one metric.

``run_comparison(config, out_dir)`` trains, tunes and scores every track of an
:class:`~gitract.config.ExperimentConfig`, caching each finished step under the run folder,
then ``build_report(out_dir)`` writes ``report.md``, ``summary.json`` and figures.
The command line (:mod:`gitract.commands`) also uses the run's pieces exported here:
``load_index`` / ``make_folds`` (the data and split of a config), ``resolve_out_dir`` and
``check_run_folder`` (where a run goes),
``read_json`` (a run folder's files), ``predict_submission`` and ``predict_coco`` (a
trained track's predictions); benchmarks time one fold's evaluation with ``evaluate_step``.
"""

from gitract.compare._coco_pred import predict_coco
from gitract.compare._files import read_json
from gitract.compare._predict import predict_submission
from gitract.compare._report import build_report
from gitract.compare._run import (
    data_path,
    load_index,
    make_folds,
    resolve_out_dir,
    run_comparison,
)
from gitract.compare._run_folder import check_run_folder
from gitract.compare._step_eval import evaluate_step

__all__ = [
    "build_report",
    "check_run_folder",
    "data_path",
    "evaluate_step",
    "load_index",
    "make_folds",
    "predict_coco",
    "predict_submission",
    "read_json",
    "resolve_out_dir",
    "run_comparison",
]
