"""The comparison run: every track on one case-grouped split, one tuning rule, one metric.

``run_comparison(config, out_dir)`` trains, tunes and scores every track of an
:class:`~gitract.config.ExperimentConfig`, caching each finished step under the run folder,
then ``build_report(out_dir)`` writes ``report.md``, ``summary.json`` and figures.
"""

from gitract.compare._report import build_report
from gitract.compare._run import data_path, run_comparison
from gitract.compare._run_folder import check_run_folder
from gitract.compare._tracks import make_track

__all__ = ["build_report", "check_run_folder", "data_path", "make_track", "run_comparison"]
