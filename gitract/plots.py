"""Figures for the reports. Every function takes plain arrays / DataFrames, draws, and returns
the Figure (or the Axes when given ``ax``); none reads or writes files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from numpy.typing import NDArray

_CLASS_COLOURS = {"large_bowel": "tab:green", "small_bowel": "gold", "stomach": "tab:red"}


def _colour(name: str, i: int) -> str:
    return _CLASS_COLOURS.get(name, f"C{i}")


def plot_proba_maps(
    image: NDArray,
    proba_by_track: Mapping[str, NDArray],
    truth: NDArray,
    *,
    classes: Sequence[str],
    title: str = "",
):
    """One row per class: the image, then each track's probability map with truth contours.

    Parameters
    ----------
    image : ndarray of shape (H, W), float
    proba_by_track : mapping of track name to ndarray of shape (H, W, C), float in [0, 1]
    truth : ndarray of shape (H, W, C), bool
    """
    tracks = list(proba_by_track)
    if not tracks:
        raise ValueError("plot_proba_maps needs at least one track's probability map")
    n_rows, n_cols = len(classes), len(tracks) + 1
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows), squeeze=False, layout="constrained"
    )
    for r, cls in enumerate(classes):
        ax = axes[r, 0]
        ax.imshow(image, cmap="gray")
        if truth[..., r].any():
            ax.contour(truth[..., r], levels=[0.5], colors=[_colour(cls, r)], linewidths=0.8)
        ax.set_ylabel(cls, fontsize=8)
        if r == 0:
            ax.set_title("image + truth", fontsize=8)
        for c, name in enumerate(tracks, start=1):
            ax = axes[r, c]
            im = ax.imshow(proba_by_track[name][..., r], cmap="magma", vmin=0, vmax=1)
            if truth[..., r].any():
                ax.contour(truth[..., r], levels=[0.5], colors=["cyan"], linewidths=0.6)
            if r == 0:
                ax.set_title(name, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, -1], shrink=0.6, label="probability")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_threshold_sweeps(sweeps: Mapping[str, pd.DataFrame], *, classes: Sequence[str]):
    """Validation score against threshold, one panel per class, one line per track.

    Each DataFrame has columns ``class``, ``threshold`` and ``score`` (extra columns ignored).
    """
    fig, axes = plt.subplots(
        1, len(classes), figsize=(3.4 * len(classes), 3), squeeze=False, layout="constrained"
    )
    for i, cls in enumerate(classes):
        ax = axes[0, i]
        for name, df in sweeps.items():
            part = df[df["class"] == cls]
            if "min_size" in part and part["min_size"].nunique() > 1:
                # Best over component sizes; NaN where every size is NaN (the organ is
                # absent from the validation scans), which idxmax cannot take.
                part = part.groupby("threshold", as_index=False)["score"].max()
            part = part.sort_values("threshold")
            ax.plot(part["threshold"], part["score"], marker=".", label=name)
        ax.set_title(cls, fontsize=9)
        ax.set_xlabel("threshold")
        ax.set_ylabel("validation score")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7)
    return fig


def reliability_table(
    proba: NDArray, truth: NDArray, *, n_bins: int = 10
) -> pd.DataFrame:
    """Bin predicted probabilities and count positives, for reliability curves.

    Parameters
    ----------
    proba : ndarray of shape (n,), float in [0, 1]
    truth : ndarray of shape (n,), bool

    Returns
    -------
    DataFrame with one row per non-empty bin: ``bin``, ``mean_proba``, ``frac_pos``, ``count``.

    Examples
    --------
    >>> t = reliability_table(np.array([0.05, 0.05, 0.95]), np.array([0, 0, 1], bool), n_bins=2)
    >>> t["frac_pos"].tolist()
    [0.0, 1.0]
    """
    proba = np.asarray(proba, dtype=np.float64).ravel()
    truth = np.asarray(truth, dtype=bool).ravel()
    idx = np.clip((proba * n_bins).astype(int), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=proba, minlength=n_bins)
    pos = np.bincount(idx, weights=truth.astype(float), minlength=n_bins)
    keep = count > 0
    return pd.DataFrame(
        {
            "bin": np.flatnonzero(keep),
            "mean_proba": sum_p[keep] / count[keep],
            "frac_pos": pos[keep] / count[keep],
            "count": count[keep],
        }
    )


def plot_reliability(tables: pd.DataFrame, *, classes: Sequence[str]):
    """Reliability (calibration) curves per class; ``tables`` has columns
    ``track``, ``class``, ``mean_proba``, ``frac_pos``, ``count``."""
    fig, axes = plt.subplots(
        1, len(classes), figsize=(3.2 * len(classes), 3.2), squeeze=False, layout="constrained"
    )
    for i, cls in enumerate(classes):
        ax = axes[0, i]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for name, part in tables[tables["class"] == cls].groupby("track", sort=False):
            ax.plot(part["mean_proba"], part["frac_pos"], marker="o", ms=3, label=name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(cls, fontsize=9)
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("fraction of true pixels")
    axes[0, -1].legend(fontsize=7)
    return fig


def plot_confusions(matrices: Mapping[str, NDArray], *, labels: Sequence[str]):
    """Row-normalised block-classification confusion matrices, one panel per track."""
    n = len(matrices)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.0 * cols, 3.0 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, cm) in zip(axes.ravel(), matrices.items(), strict=False):
        ax.axis("on")
        cm = np.asarray(cm, dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for (r, c), v in np.ndenumerate(norm):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v > 0.5 else "black")
        ax.set_xticks(range(len(labels)), [s[:6] for s in labels], fontsize=6, rotation=45)
        ax.set_yticks(range(len(labels)), [s[:6] for s in labels], fontsize=6)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_title(name, fontsize=8)
    return fig


def plot_bars(values: pd.DataFrame, *, column: str, ylabel: str, ax=None):
    """Grouped bars: ``values`` has columns ``track``, ``class`` and ``column``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3), layout="constrained")
    wide = values.pivot(index="track", columns="class", values=column)
    wide.plot.bar(ax=ax, rot=30)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_learning_curves(curves: pd.DataFrame):
    """One row per track: training loss (left) and its validation value (right, the
    networks' validation score (or Dice) or the CNN's loss) against the optimiser step (or the epoch when steps
    are not recorded), one line per fold.

    ``curves`` has columns ``model``, ``epoch``, ``train_loss`` and optionally ``fold``,
    ``step``, ``val_score``, ``val_dice``, ``val_loss``.
    """
    if curves.empty:
        raise ValueError("plot_learning_curves needs at least one row")
    names = list(dict.fromkeys(curves["model"]))
    fig, axes = plt.subplots(len(names), 2, figsize=(8, 2.6 * len(names)), squeeze=False,
                             layout="constrained")
    for r, name in enumerate(names):
        part = curves[curves["model"] == name]
        val_col = next((c for c in ("val_score", "val_dice", "val_loss") if c in part
                        and part[c].notna().any()), None)
        use_step = "step" in part and part["step"].notna().all()
        groups = part.groupby("fold", sort=True) if "fold" in part else [(0, part)]
        for fold, g in groups:
            x = g["step"] if use_step else g["epoch"]
            axes[r, 0].plot(x, g["train_loss"], marker=".", label=f"fold {fold}")
            if val_col is not None:
                axes[r, 1].plot(x, g[val_col], marker=".", label=f"fold {fold}")
        axes[r, 0].set_ylabel(f"{name}\ntraining loss", fontsize=8)
        axes[r, 1].set_ylabel((val_col or "no validation").replace("_", " "), fontsize=8)
        for ax in axes[r]:
            ax.set_xlabel("optimiser step" if use_step else "epoch", fontsize=8)
            ax.grid(alpha=0.3)
        # A track without a validation curve (the CNN with validation_fraction=0) has an
        # empty right panel: the legend goes with the training loss then.
        axes[r, 1 if val_col is not None else 0].legend(fontsize=7)
    return fig


def plot_data_regime(table: pd.DataFrame, ax=None):
    """Score against training cases (log scale), one line per track with its interval as
    a band; ``table`` is a run's ``learning_curve.csv``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for i, (name, g) in enumerate(table.groupby("track", sort=False)):
        g = g.sort_values("train_cases")
        colour = _colour(name, i)
        ax.plot(g["train_cases"], g["score"], marker="o", color=colour, label=name)
        if g["score_low"].notna().all() and g["score_high"].notna().all():
            ax.fill_between(g["train_cases"], g["score_low"], g["score_high"], color=colour,
                            alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training cases per fold")
    ax.set_ylabel("competition score (test)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax
