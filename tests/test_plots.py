import numpy as np
import pandas as pd

from gitract import plots

CLASSES = ("large_bowel", "small_bowel", "stomach")


def test_proba_maps_figure_has_one_panel_per_track_and_class(pyplot, rng):
    truth = rng.random((20, 20, 3)) > 0.7
    maps = {"a": rng.random((20, 20, 3)), "b": rng.random((20, 20, 3))}
    fig = plots.plot_proba_maps(rng.random((20, 20)), maps, truth, classes=CLASSES)
    assert len(fig.axes) == 3 * 3 + 1  # panels + colour bar


def test_reliability_table_is_calibrated_for_calibrated_data(rng):
    p = rng.random(200_000)
    y = rng.random(200_000) < p
    table = plots.reliability_table(p, y, n_bins=10)
    assert table["count"].sum() == 200_000
    np.testing.assert_allclose(table["frac_pos"], table["mean_proba"], atol=0.02)


def test_other_figures_draw(pyplot):
    sweep = pd.DataFrame(
        {"class": ["stomach"] * 3, "threshold": [0.1, 0.5, 0.9], "score": [0.2, 0.6, 0.4]}
    )
    plots.plot_threshold_sweeps({"rf": sweep}, classes=("stomach",))
    rel = pd.DataFrame(
        {"track": "rf", "class": "stomach", "mean_proba": [0.1, 0.9], "frac_pos": [0.0, 1.0],
         "count": [5, 5]}
    )
    plots.plot_reliability(rel, classes=("stomach",))
    plots.plot_confusions({"rf": np.eye(4) * 5}, labels=("bg", *CLASSES))
    bars = pd.DataFrame({"track": ["rf", "rf"], "class": ["a", "b"], "fp": [0.1, 0.2]})
    ax = plots.plot_bars(bars, column="fp", ylabel="share")
    assert ax.get_ylabel() == "share"
