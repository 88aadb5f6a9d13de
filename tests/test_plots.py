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


def test_figures_with_nothing_to_draw_raise_a_clear_error(pyplot, rng):
    import pytest

    with pytest.raises(ValueError, match="at least one track"):
        plots.plot_proba_maps(rng.random((20, 20)), {}, rng.random((20, 20, 3)) > 0.5,
                              classes=CLASSES)
    with pytest.raises(ValueError, match="at least one row"):
        plots.plot_learning_curves(pd.DataFrame())


def test_learning_curves_one_row_per_track(pyplot):
    curves = pd.DataFrame({
        "model": ["unet"] * 4 + ["cnn-33"] * 2, "fold": [0, 0, 1, 1, 0, 0],
        "epoch": [1, 2, 1, 2, 1, 2], "step": [10, 20, 10, 20, None, None],
        "train_loss": [0.9, 0.5, 0.8, 0.6, 1.2, 1.0],
        "val_dice": [0.2, 0.4, 0.1, 0.3, None, None],
        "val_loss": [None, None, None, None, 1.1, 1.05]})
    fig = plots.plot_learning_curves(curves)
    axes = fig.axes
    assert len(axes) == 4
    assert axes[0].get_xlabel() == "optimiser step" and axes[2].get_xlabel() == "epoch"
    assert len(axes[0].lines) == 2 and len(axes[3].lines) == 1
    assert axes[3].get_ylabel() == "val loss"


def test_learning_curves_of_a_track_without_validation(pyplot):
    curves = pd.DataFrame({"model": ["cnn-33"] * 2, "fold": [0, 0], "epoch": [1, 2],
                           "step": [5, 10], "train_loss": [1.0, 0.7],
                           "val_loss": [None, None]})
    axes = plots.plot_learning_curves(curves).axes
    assert len(axes[0].lines) == 1 and not axes[1].lines
    assert axes[1].get_ylabel() == "no validation"
